import cliProgress from "cli-progress";
import type { Progress } from "./backup.ts";

/**
 * Progress for the backup/restore CLIs on stderr: a bar for counted steps (tables dumped or
 * restored) on a terminal, one line per step otherwise (logs, CI). Step labels hold no PHI.
 */
export function stderrProgress(): Progress & { finish(): void } {
  const started = performance.now();
  let bar: cliProgress.SingleBar | undefined;
  let barStep = "";
  let lastStep = "";
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
    barStep = "";
  };
  const fn = ((event) => {
    const elapsed = `${((performance.now() - started) / 1000).toFixed(1)}s`;
    if (event.total !== undefined && process.stderr.isTTY) {
      if (barStep !== event.step) {
        stopBar();
        bar = new cliProgress.SingleBar(
          { format: `  ${event.step} [{bar}] {value}/{total} tables`, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(event.total, 1), event.done ?? 0);
        barStep = event.step;
      } else bar?.update(event.done ?? 0);
      return;
    }
    if (event.total !== undefined) {
      // Non-TTY: the step once, then its end.
      if (lastStep !== event.step)
        process.stderr.write(`[${elapsed}] ${event.step} (${event.total} tables)…\n`);
      else if (event.done === event.total)
        process.stderr.write(`[${elapsed}] ${event.step}: ${event.done}/${event.total} tables\n`);
      lastStep = event.step;
      return;
    }
    stopBar();
    lastStep = event.step;
    process.stderr.write(`[${elapsed}] ${event.step}…\n`);
  }) as Progress & { finish(): void };
  fn.finish = stopBar;
  return fn;
}
