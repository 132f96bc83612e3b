/**
 * A machine's serial console: the log QEMU writes everything the guest
 * prints to, read by byte offset (a boot is the slice after the offset it
 * started at), and the socket the lab types on.
 */
import { createConnection, type Socket } from "node:net";
import { open, stat } from "node:fs/promises";

export class SerialConsole {
  private sock?: Socket;

  constructor(
    /** The file QEMU appends the guest's console output to. */
    readonly log: string,
    /** QEMU's console socket (a chardev server). */
    readonly socket: string,
  ) {}

  /** Current size of the log: the offset where whatever happens next begins. */
  async offset(): Promise<number> {
    try {
      return (await stat(this.log)).size;
    } catch {
      return 0;
    }
  }

  /** Console text from a byte offset to now. */
  async since(from: number): Promise<string> {
    let fh;
    try {
      fh = await open(this.log, "r");
    } catch {
      return "";
    }
    try {
      const size = (await fh.stat()).size;
      if (size <= from) return "";
      const buf = Buffer.alloc(size - from);
      await fh.read(buf, 0, buf.length, from);
      return buf.toString("utf8");
    } finally {
      await fh.close();
    }
  }

  /** The last non-blank lines since an offset, escape sequences and carriage returns removed: for error messages. */
  async tail(lines = 25, from = 0): Promise<string> {
    const text = (await this.since(from)).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
    return text.split("\n").filter((l) => l.trim()).slice(-lines).join("\n");
  }

  /**
   * Type on the console. One connection stays open while the machine runs:
   * QEMU reads a client's bytes only as fast as the guest's UART takes them,
   * and drops what it has not read when the client hangs up, so a connection
   * closed right after a write loses characters on a busy host.
   */
  async type(text: string): Promise<void> {
    const sock = await this.connection();
    await new Promise<void>((resolve, reject) => sock.write(text, (err) => (err ? reject(err) : resolve())));
  }

  /** Hang up the lab's connection (before a person attaches to a kept machine, or when QEMU ends). */
  close(): void {
    this.sock?.destroy();
    this.sock = undefined;
  }

  private async connection(): Promise<Socket> {
    if (this.sock && !this.sock.destroyed) return this.sock;
    const sock: Socket = createConnection(this.socket);
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", () => resolve());
      sock.once("error", reject);
    });
    // What the guest prints is in the log already; what reaches this socket is read and dropped.
    sock.on("data", () => undefined);
    sock.on("error", () => undefined);
    sock.on("close", () => {
      if (this.sock === sock) this.sock = undefined;
    });
    this.sock = sock;
    return sock;
  }
}
