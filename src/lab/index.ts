/** The namespace lab: used by `transit6 lab up|down`, the interop tests and the benchmarks. */
export * from './exec.js';
export * from './netns.js';
export * from './probe.js';
export * from './teredo-topology.js';
