/**
 * Every QEMU process the lab starts is registered here, so that it is ended on
 * every path: normal return, thrown error, timeout, Ctrl-C or SIGTERM. On a
 * signal the lab exits only once they are gone.
 */
const live = new Map<number, string>();
let installed = false;

function killAll(signal: NodeJS.Signals = "SIGKILL"): number[] {
  const pids = [...live.keys()];
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  live.clear();
  return pids;
}

/**
 * Whether a process is gone: no such pid. Each one is this process's own
 * child, so it is gone once reaped here; a zombie left to init would still
 * show in `pgrep`, and on a host whose init is slow to reap, for long.
 */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/**
 * Wait until the killed processes are really gone (the kernel takes a moment
 * to tear down a guest's memory), so that nothing is still running when the
 * lab exits; at most `ms`.
 */
async function waitGone(pids: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (pids.some((p) => !gone(p)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", () => killAll());
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      const pids = killAll();
      // 128 + signal number, as a shell would report it; only once the guests are gone.
      void waitGone(pids, 10_000).finally(() => process.exit(sig === "SIGINT" ? 130 : sig === "SIGTERM" ? 143 : 129));
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
