/** The shape of a fault to inject: the types the scenario API shares with the fault injectors. */
import type { FaultName } from "./index.ts";

export type { FaultName };

export interface InjectSpec {
  fault: FaultName;
  /** 1-based: before scenario step `at`; steps + 1 means after the last one. */
  at: number;
  /** Inject this long after step `at` started, while it runs, instead of before it. */
  afterMs?: number;
  /**
   * Inject once the guest has written this many bytes to its disks since step
   * `at` started, while it runs: a cut at a known point of a copy, however
   * fast the host is (QMP query-blockstats, polled every 100 ms).
   */
  afterWrittenBytes?: number;
  /** Try the rescue route when the firmware boot after the fault fails. */
  rescue?: boolean;
  /** pulled-disk: which disk (default: the first, the one the firmware boots). */
  disk?: string;
  /** io-errors: which device-mapper device (default: the first LV the procedure made, found at injection time). */
  device?: string;
}
