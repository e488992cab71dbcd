/** Teredo protocol constants, with the section that fixes each. */

export { TEREDO_PORT } from '../wire/teredo.js';

/** RFC 4380 §5.1.2: the Teredo interface MTU. */
export const TEREDO_MTU = 1280;

/** RFC 4380 §5.2.1: RS time-out T and repetitions N (from RFC 2461). */
export const RS_TIMEOUT_MS = 4_000;
export const RS_ATTEMPTS = 3;

/** RFC 4380 §2.15: the default refresh interval a client assumes for its NAT. */
export const DEFAULT_NAT_UDP_TIMEOUT_MS = 30_000;

/** RFC 4380 §5.2.6: bubble spacing and budget. */
export const BUBBLE_MIN_INTERVAL_MS = 2_000;
export const BUBBLE_MAX_COUNT = 4;
export const BUBBLE_WINDOW_MS = 300_000;

/** RFC 4380 §2.17: the Teredo IPv4 discovery address 224.0.0.253. */
export const TEREDO_DISCOVERY_ADDRESS = 0xe00000fd;

/** The link-local addresses a client solicits from (Miredo's choice, also accepted by Windows servers). */
export const CLIENT_RS_SOURCE = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
export const CLIENT_RS_SOURCE_CONE = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
