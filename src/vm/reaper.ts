/**
 * Every QEMU process the lab starts is registered here, so that it is ended on
 * every path: normal return, thrown error, timeout, Ctrl-C or SIGTERM.
 */
const live = new Map<number, string>();
let installed = false;

function killAll(signal: NodeJS.Signals = "SIGKILL"): void {
  for (const pid of live.keys()) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", () => killAll());
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      killAll();
      // 128 + signal number, as a shell would report it.
      process.exit(sig === "SIGINT" ? 130 : sig === "SIGTERM" ? 143 : 129);
    });
  }
}

export function registerPid(pid: number, what: string): void {
  install();
  live.set(pid, what);
}

export function unregisterPid(pid: number): void {
  live.delete(pid);
}

export function livePids(): number[] {
  return [...live.keys()];
}
