/** `vmlab train serve`: training mode in a browser (src/training/serve.ts). */
import { isIP } from "node:net";
import { UsageError } from "../../src/errors.ts";
import { DEFAULT_MACHINE_BYTES, isLoopback, startTrainServer } from "../../src/training/serve.ts";
import { note, out } from "../output.ts";

function portOf(v: string | undefined): number {
  if (v === undefined) return 0;
  const n = Number(v);
  if (!/^\d{1,5}$/.test(v) || n > 65535) throw new UsageError(`bad --port "${v}": use a port number from 0 to 65535 (0: any free one)`);
  return n;
}

function idleOf(v: string | undefined): number {
  if (v === undefined) return 30;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n >= 1) || n > 24 * 60) throw new UsageError(`bad --idle-minutes "${v}": use minutes from 1 to 1440`);
  return n;
}

function hostOf(v: string | undefined): string {
  if (v === undefined) return "127.0.0.1";
  if (isIP(v) || /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(v)) return v;
  throw new UsageError(`bad --host "${v}": use an address of this host, like 127.0.0.1 or 0.0.0.0`);
}

export async function cmdTrainServe(o: { host?: string; port?: string; idleMinutes?: string }): Promise<number> {
  const host = hostOf(o.host);
  const port = portOf(o.port);
  const idleMinutes = idleOf(o.idleMinutes);
  let srv;
  try {
    srv = await startTrainServer({ host, port, idleMinutes, log: (l) => note(`${new Date().toISOString().slice(11, 19)} ${l}`) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE") throw new UsageError(`port ${port} on ${host} is in use`, { hint: "choose another with --port N (0: any free one)" });
    if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND") throw new UsageError(`${host} is not an address of this host`, { hint: "--host 127.0.0.1, or 0.0.0.0 for every address" });
    throw err;
  }
  if (!isLoopback(host)) {
    note(`WARNING: listening on ${host}: anyone who can reach port ${srv.port} can start machines; sessions and the trainer page still need their tokens.`);
    note("  Each session runs root shells on a guest. Keep it on a network you trust, or leave out --host to listen on 127.0.0.1 only.");
  }
  out(`vmlab training on ${srv.url}/`);
  out(`  trainees: ${srv.url}/`);
  out(`  trainer:  ${srv.url}/trainer?token=${srv.trainerToken}`);
  out(`  a session idle for ${idleMinutes} minutes is stopped; each machine needs about ${(DEFAULT_MACHINE_BYTES / 2 ** 30).toFixed(2)} GiB of host memory`);
  out("  Ctrl-C stops the server; the sessions' machines go on running");
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  await srv.close();
  note(`${signal}: the server has stopped; the sessions' machines go on running`);
  return 0;
}
