/**
 * Attaching a terminal (or any pair of streams) to a machine's serial console
 * socket, as `vmlab console` does.
 *
 * Ctrl-] (byte 0x1d, as in telnet) detaches; the machine keeps running. On a
 * terminal the input is put in raw mode, so Ctrl-C, Ctrl-D and the arrow keys
 * reach the guest. When the input is not a terminal (a pipe, a file), the
 * bytes are sent as they come, and after the input ends the console stays
 * attached until the guest has been quiet for `quietMs`, so that
 * `printf '\n' | vmlab console ID` prints the guest's answer.
 */
import { createConnection } from "node:net";
import type { Readable, Writable } from "node:stream";

export const DETACH_BYTE = 0x1d;
export const DETACH_KEY = "Ctrl-]";

export interface AttachOptions {
  input: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: Writable;
  /** After the input ends, detach once the console has printed nothing for this long. */
  quietMs?: number;
  /** ... and at the latest this long after the input ended. */
  maxLingerMs?: number;
}

export type AttachEnd = "detached" | "input-ended" | "console-closed";

export async function attachConsole(socketPath: string, opts: AttachOptions): Promise<AttachEnd> {
  const { input, output } = opts;
  const quietMs = opts.quietMs ?? 1500;
  const maxLingerMs = opts.maxLingerMs ?? 15_000;
  const sock = createConnection(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  const raw = Boolean(input.isTTY && input.setRawMode);
  if (raw) input.setRawMode!(true);
  return new Promise<AttachEnd>((resolve) => {
    let quietTimer: NodeJS.Timeout | undefined;
    let lingerTimer: NodeJS.Timeout | undefined;
    let inputEnded = false;
    let done = false;
    const finish = (how: AttachEnd) => {
      if (done) return;
      done = true;
      clearTimeout(quietTimer);
      clearTimeout(lingerTimer);
      input.off("data", onInput);
      input.off("end", onEnd);
      if (raw) input.setRawMode!(false);
      input.pause();
      sock.off("data", onOutput);
      sock.end();
      sock.destroy();
      resolve(how);
    };
    const armQuiet = () => {
      clearTimeout(quietTimer);
      quietTimer = setTimeout(() => finish("input-ended"), quietMs);
    };
    const onOutput = (chunk: Buffer) => {
      output.write(chunk);
      if (inputEnded) armQuiet();
    };
    const onInput = (chunk: Buffer | string) => {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      const at = buf.indexOf(DETACH_BYTE);
      if (at >= 0) {
        if (at > 0) sock.write(buf.subarray(0, at), () => finish("detached"));
        else finish("detached");
        return;
      }
      sock.write(buf);
    };
    const onEnd = () => {
      inputEnded = true;
      armQuiet();
      lingerTimer = setTimeout(() => finish("input-ended"), maxLingerMs);
    };
    sock.on("data", onOutput);
    sock.on("close", () => finish("console-closed"));
    sock.on("error", () => finish("console-closed"));
    input.on("data", onInput);
    input.on("end", onEnd);
    input.resume();
  });
}
