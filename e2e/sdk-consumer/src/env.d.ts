// The consumer installs only @haven/client and its peers (no @types/node): the little of Node's
// globals the live script reads.
declare const process: { env: Record<string, string | undefined>; exitCode?: number };
