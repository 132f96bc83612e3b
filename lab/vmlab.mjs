#!/usr/bin/env node
// Entry point of the `vmlab` command: loads the TypeScript command line through tsx.
import { register } from "tsx/esm/api";
register();
const { runCli } = await import("./cli.ts");
await runCli();
