/**
 * The confirmation before a run is deleted: what goes (its records and its folder, with how many
 * files and bytes) and a form that must be sent on purpose. Without JavaScript, and no dialog.
 */
import type { FolderSize } from "../deletion.ts";
import * as fmt from "../format.ts";
import type { RunView } from "../runs.ts";
import { CsrfField, Layout, runHref } from "./layout.tsx";

export function DeletePage(props: { run: RunView; folder: FolderSize; csrf: string }) {
  const { run, folder } = props;
  return (
    <Layout title={`delete ${run.name}`}>
      <h1>Delete run {run.name}?</h1>
      <p>
        This removes <code>{run.id}</code> from the run store (its metrics, notes and tags) and
        {folder.files === null
          ? (
            <>
              {" "}nothing on disk: there is no folder <code>{folder.path}</code>.
            </>
          )
          : (
            <>
              {" "}its folder <code>{folder.path}</code> ({folder.files}{" "}
              {folder.files === 1 ? "file" : "files"},{" "}
              {fmt.bytes(folder.bytes)}: checkpoints and config).
            </>
          )} It cannot be undone; archiving hides a run and keeps it.
      </p>
      <form method="post" action={`${runHref(run.id)}/delete`} class="confirm">
        <CsrfField token={props.csrf} />
        <input type="hidden" name="confirm" value={run.id} />
        <button type="submit" class="danger">delete run and files</button>{" "}
        <a href={runHref(run.id)}>cancel</a>
      </form>
    </Layout>
  );
}
