/**
 * The exchange in the seeds' "Notes on Teredo (part 4)": a client behind a NAT qualifies with the server, tests
 * connectivity to an IPv6 host through it, and the relay nearest that host reaches the client by an indirect bubble
 * through the server, after which the client and the relay talk directly.
 */
import type { LadderLane, LadderMessage } from '../../src/trace/ladder.js';

export const SEEDS_LANES: LadderLane[] = [
  { id: 'client', title: 'client', subtitle: '192.168.20.200' },
  { id: 'nat', title: 'NAT', subtitle: '30.3.9.202' },
  { id: 'server', title: 'server', subtitle: '17.23.52.250' },
  { id: 'relay', title: 'relay', subtitle: '203.0.113.1' },
  { id: 'v6host', title: 'v6host', subtitle: '2dcc:7c4e:3651:52::254' },
];

export const SEEDS_MESSAGES: LadderMessage[] = [
  { at: 0, from: 'client', to: 'server', label: 'RS', detail: 'fe80::ffff:ffff:fffe > ff02::2', style: 'control' },
  { at: 42, from: 'server', to: 'client', label: 'RA, origin indication 30.3.9.202:52643', detail: '17.23.52.250:3544 > 30.3.9.202:52643', style: 'control' },
  { at: 100, from: 'client', to: 'server', label: 'connectivity test: echo request', style: 'echo' },
  { at: 121, from: 'server', to: 'v6host', label: 'echo request', detail: '2001:0:1117:34fa:8000:cd5c:e1fc:f635 > 2dcc:7c4e:3651:52::254', style: 'echo' },
  { at: 160, from: 'relay', to: 'server', label: 'indirect bubble', style: 'bubble' },
  { at: 181, from: 'server', to: 'client', label: 'bubble, origin indication 203.0.113.1:23863', style: 'bubble' },
  { at: 200, from: 'client', to: 'relay', label: 'direct bubble', style: 'bubble' },
  { at: 245, from: 'relay', to: 'client', label: 'echo reply', detail: '2dcc:7c4e:3651:52::254 > 2001:0:1117:34fa:8000:cd5c:e1fc:f635', style: 'echo' },
];
