/**
 * The public API of vmlab (`import { scenario } from "vmlab"`): what a
 * project's own scenarios, runbook tooling and image recipes import. Only
 * what is re-exported here (and from `vmlab/procedures` and `vmlab/faults`)
 * is promised to stay; everything else under src/ may move.
 */
export { scenario } from "../scenario/types.ts";
export type { Scenario, ScenarioContext, ScenarioReport, StepRecord, ProbeResult, RunEvent } from "../scenario/types.ts";
export type { DataCheck, DataSet, Manifest } from "../scenario/dataset.ts";

export type {
  BootExpectation,
  Expectation,
  FactExpectation,
  FailureAlternative,
  FaultExpectation,
  FinalExpectation,
  StepFailureExpectation,
} from "../verdict/expect.ts";
export { describeExpectation, expectationProblems } from "../verdict/expect.ts";

export { loadRunbook, readRunbook, runbookScenario, FINAL_CHECK_STEP, FINAL_REBOOT_STEP } from "../runbook/scenario.ts";
export { parseRunbook, runbookFormat, runbookName } from "../runbook/parse.ts";
export type { BlockDirectives, ParsedRunbook, RebootDirective, RunbookBlock, RunbookFormat, RunbookFront } from "../runbook/parse.ts";

export { Machine, expectBoot } from "../vm/machine.ts";
export { sh } from "../vm/guest-sh.ts";
export type { GuestShValue } from "../vm/guest-sh.ts";
export type { BootRecord, BootVia, BootWaitOptions, MachineEvent, MachineOptions } from "../vm/machine.ts";
export type { BootOutcome, TerminalBootOutcome } from "../boot/classify.ts";

export { recipe } from "../image/recipe.ts";
export type { DiskSpec, ImageRecipe, PartitionSpec } from "../image/recipe.ts";

export { VmlabError, UsageError } from "../errors.ts";
export type { ErrorDetails } from "../errors.ts";
