// The names a group's log is kept under: its key in the store, the dedup keys of its posts and
// events, and the device cursors the group home keeps on it. One file, so that the home that
// appends and the pump that reads agree on them.

export const groupKey = (group: string): string => `g:${group}`;
export const postKey = (from: string, cid: string): string => `c:${from}:${cid}`;

/** The device names of a group log's cursors: every message up to FANOUT is with every member;
 * SNAPSHOT is the seq of the latest snapshot's first part; FANBASE that of the latest snapshot at
 * or before FANOUT. */
export const FANOUT = 'fanout';
export const SNAPSHOT = 'snapshot';
export const FANBASE = 'fanbase';

/** The dedup-key prefix of the events of the generation that starts with the snapshot at `base`
 * (0: the log's start, before any snapshot). Loading a group reads one generation. */
export const genPrefix = (base: number): string => (base > 0 ? `s:${base}:` : 'e:');
/** Whether a group log entry is a membership event or snapshot part (not a message). */
export const isLogEvent = (dkey: string): boolean => dkey.startsWith('e:') || dkey.startsWith('s:');
