/** Loading a user's TypeScript module (a scenario, an image recipe) by path, with errors for people. */
import { pathToFileURL } from "node:url";
import { UsageError } from "../errors.ts";

/** The default export of `file`; a module that throws or exports nothing is bad input (exit 2), named with `what`. */
export async function importDefault<T>(file: string, what: string): Promise<T> {
  let mod: { default?: T };
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    const e = err as Error;
    throw new UsageError(`${what} ${file} failed to load: ${e.message}`, {
      where: file,
      output: e.stack?.split("\n").slice(0, 8).join("\n"),
      hint: "fix the error in the file; nothing was started",
    });
  }
  if (!mod.default) throw new UsageError(`${what} ${file} has no default export`, { hint: what.startsWith("image") ? "export default recipe({...}); shared settings belong under src/" : "export default scenario({...})" });
  return mod.default;
}
