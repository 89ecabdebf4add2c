/**
 * Deleting a run: when it may be deleted, what its folder holds, and removing that folder.
 */
import type { RunView } from "./runs.ts";

export interface FolderSize {
  path: string;
  /** Null when the folder does not exist. */
  files: number | null;
  bytes: number;
}

/** Why a run may not be deleted, or null. */
export function deleteRefusal(run: RunView): string | null {
  if (run.status === "running") {
    return `run "${run.id}" is training: stop it before deleting it`;
  }
  if (run.sweepId) {
    return `run "${run.id}" is a trial of sweep "${run.sweepId}", whose results it holds: ` +
      "archive it instead";
  }
  return null;
}

/** Files and bytes under a folder, links not followed (they are removed, not their targets). */
export function folderSize(path: string): FolderSize {
  let info;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return { path, files: null, bytes: 0 };
  }
  if (!info.isDirectory) return { path, files: 1, bytes: info.size };
  let files = 0;
  let bytes = 0;
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) walk(p);
      else {
        files++;
        // A link's own size is the length of the path it holds: not data that goes.
        if (e.isFile) bytes += Deno.lstatSync(p).size;
      }
    }
  };
  walk(path);
  return { path, files, bytes };
}

/**
 * Removes a run's folder. A link in its place is removed itself, never what it points to; a
 * folder that is not there is nothing to remove.
 */
export async function removeRunFolder(path: string): Promise<void> {
  let info;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  await Deno.remove(path, { recursive: info.isDirectory });
}
