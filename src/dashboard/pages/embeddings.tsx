// deno-lint-ignore-file jsx-key
/**
 * A run's embeddings page: a 2-D map of one kind of its embeddings (clients of an event-sequence
 * run, items of a SASRec run) coloured by their colour field, with the legend and how the map
 * was made. The script (embeddings.js) draws the points on a canvas from the JSON API and names
 * the client or item under the pointer.
 */
import type { EmbeddingKind } from "../../store/embeddings.ts";
import type { ColourScheme } from "../embedding_colour.ts";
import type { MapState } from "../embedding_view.ts";
import * as fmt from "../format.ts";
import type { RunView } from "../runs.ts";
import { Badge, Layout, runHref } from "./layout.tsx";

export interface EmbeddingsPageProps {
  run: RunView;
  kinds: EmbeddingKind[];
  kind: EmbeddingKind;
  count: number;
  dim: number;
  state: MapState;
  scheme: ColourScheme;
}

export function embeddingsHref(id: string, kind?: EmbeddingKind): string {
  return `${runHref(id)}/embeddings${kind ? `?kind=${kind}` : ""}`;
}

export function embeddingsApiHref(id: string, kind: EmbeddingKind): string {
  return `/api/runs/${encodeURIComponent(id)}/embeddings/${kind}`;
}

const SINGULAR: Record<EmbeddingKind, string> = { clients: "client", items: "item" };

export function EmbeddingsPage(props: EmbeddingsPageProps) {
  const { run, kind, scheme, state } = props;
  const title = `${SINGULAR[kind]} embeddings`;
  return (
    <Layout title={`${run.name} · ${title}`}>
      <h1>
        <a href={runHref(run.id)}>{run.name}</a> · {title} <Badge status={run.status} />
      </h1>
      <p class="meta">
        {fmt.number(props.count)} {kind} × {props.dim} dimensions
        {scheme.kind === "plain" ? "" : ` · coloured by ${scheme.name}`}
      </p>
      {props.kinds.length > 1
        ? (
          <nav class="kinds" aria-label="embedding kinds">
            {props.kinds.map((k) =>
              k === kind ? <strong>{k}</strong> : <a href={embeddingsHref(run.id, k)}>{k}</a>
            )}
          </nav>
        )
        : null}
      <p class="map-note" data-field="map-note">{state.note}</p>
      <figure
        class="embedding-map"
        data-src={embeddingsApiHref(run.id, kind)}
        data-method={state.map.method}
        data-points="0"
      >
        <canvas aria-label={`${title} of ${run.name}, ${state.map.method.toUpperCase()} map`}>
        </canvas>
        <div class="map-tip" role="status" hidden></div>
        <noscript>
          <p class="note">The map needs JavaScript; the points come from the JSON below.</p>
        </noscript>
      </figure>
      <Legend scheme={scheme} />
      <p class="api">
        JSON: <a href={embeddingsApiHref(run.id, kind)}>map, ids and colours</a>
      </p>
      <script type="module" src="/static/embeddings.js"></script>
    </Layout>
  );
}

function Legend(props: { scheme: ColourScheme }) {
  const { scheme } = props;
  if (scheme.kind === "plain") return null;
  if (scheme.kind === "categories") {
    return (
      <ul class="categories" aria-label={`colours of ${scheme.name}`}>
        {scheme.categories.map((c) => (
          <li>
            <span class="dot" style={`background:${c.colour}`}></span>
            {c.label} <span class="hint">{fmt.number(c.count)}</span>
          </li>
        ))}
      </ul>
    );
  }
  return (
    <div class="scale" aria-label={`colour scale of ${scheme.name}`}>
      <span class="bar" style={`background:${scheme.gradient}`}></span>
      <span class="ticks">
        <span>{fmt.number(scheme.min)}</span>
        <span>{scheme.name}{scheme.log ? ", log scale" : ""}</span>
        <span>{fmt.number(scheme.max)}</span>
      </span>
    </div>
  );
}
