/**
 * Shared command-line behaviour of Haven's operator CLIs (`npm run import`, `keys`, `audit`):
 * a usage error prints the message and the usage text (exit 1), `--help` prints the usage (exit 0).
 * Parsing itself is `node:util` `parseArgs`, configured by each CLI.
 */

/**
 * Run a CLI's `parseArgs` call with the shared error and `--help` handling.
 * @returns the parsed arguments, or the exit code the CLI should return now
 */
export function parseCommandLine<T extends { values: { help?: boolean | undefined } }>(
  parse: () => T,
  usage: string,
): T | number {
  let parsed: T;
  try {
    parsed = parse();
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`);
    return 1;
  }
  if (parsed.values.help) {
    console.log(usage);
    return 0;
  }
  return parsed;
}

/**
 * The single command word among `positionals`, if it is one of `commands`.
 * @returns the command, or exit code 1 after printing why and the usage
 */
export function pickCommand<const C extends string>(
  positionals: string[],
  commands: readonly C[],
  usage: string,
): C | number {
  const [command, ...rest] = positionals;
  if (!command || rest.length > 0 || !(commands as readonly string[]).includes(command)) {
    console.error(`${command ? `Unknown command "${command}".` : "No command given."}\n\n${usage}`);
    return 1;
  }
  return command as C;
}
