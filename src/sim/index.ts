/** The simulator in one import, for scenario tests of the protocol cores. */
export { EventHeap, type HeapEntry } from '../core/heap.js';
export { NatModel, natPreset, type NatBehavior, type NatConfig, type NatDropReason, type NatMappingInfo, type NatPortAllocation, type NatPresetKind, type NatPresetOptions, type NatResult } from './nat.js';
export { SimNetwork, type HostEvent, type HostEventAction, type HostOptions, type LinkOptions, type NatLinkOptions, type SimDropReason, type SimHost, type SimNetworkOptions } from './network.js';
export { Ipv6EchoHost, type EchoHostDrop } from './hosts.js';
export { LINKTYPE_RAW, PCAP_MAGIC, PcapWriter, pcapFromTrace, type PcapWriterOptions } from './pcap.js';
export { formatTrace, formatTraceEntry, type HopFate, type HopView, type TraceEntry, type TraceIpv6, type TraceUdp } from './trace.js';
