/** Types for the parts of the `mbr` and `gpt` packages (plain JavaScript) that the lab uses. */
declare module "mbr" {
  interface MbrPartition {
    status: number;
    type: number;
    firstLBA: number;
    sectors: number;
  }
  interface MbrTable {
    partitions: MbrPartition[];
  }
  const MBR: {
    CLASSIC: new (buffer: Buffer) => MbrTable;
    Partition: { isExtended(type: number): boolean };
  };
  export default MBR;
}

declare module "gpt" {
  interface GptEntry {
    type: string;
    guid: string;
    name: string;
    firstLBA: bigint;
    lastLBA: bigint;
    attr: bigint;
  }
  class GPT {
    constructor(options?: { blockSize?: number });
    blockSize: number;
    guid: string;
    currentLBA: bigint;
    backupLBA: bigint;
    firstLBA: bigint;
    lastLBA: bigint;
    tableOffset: bigint;
    entries: number;
    entrySize: number;
    partitions: GptEntry[];
    parseHeader(buffer: Buffer, offset?: number): GPT;
    parseTable(buffer: Buffer, offset?: number, end?: number): GPT;
    verifyHeader(): boolean;
    static SIGNATURE: string;
  }
  export default GPT;
}
