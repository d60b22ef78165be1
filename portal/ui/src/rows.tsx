// The row browser of one table: page through rows, insert, edit, delete,
// import and export, live from tables/watch.

import { useEffect, useMemo, useState } from 'preact/hooks';
import {
  ApiError,
  CSV,
  Cluster,
  InsertResult,
  JSON_TYPE,
  K8s,
  NDJSON,
  Row,
  RowKey,
  Table,
  asApiError,
  call,
  get,
  readText,
  saveBlob,
  send,
  upload,
} from './api';
import { href } from './router';
import { RowsModel } from './rowsmodel';
import { ActionButton, DeleteButton, ErrorBox, Field, ReadyCell, Spinner, formatBytes, usePoll } from './ui';

const MAX_COLUMNS = 10;

export function RowsView({ cluster, ns, table }: { cluster: Cluster; ns: string; table: string }) {
  const k8s = useMemo(() => new K8s(cluster.id), [cluster.id]);
  const t = usePoll((signal) => get<Table>(k8s.url(ns, 'tables', table), signal), [cluster.id, ns, table], 5000);
  const back = href({ page: 'data', cluster: cluster.id, ns });
  return (
    <section>
      <p>
        <a href={back} data-testid="rows-back">
          ← Databases and tables
        </a>
      </p>
      <h2>
        Rows of <span class="mono">{table}</span> <span class="muted small">in {ns}</span>
      </h2>
      <ErrorBox error={t.error} />
      {!t.data && t.loading && <Spinner text="Loading the table…" />}
      {t.data && (
        <Browser
          key={`${cluster.id}/${ns}/${table}`}
          k8s={k8s}
          ns={ns}
          table={t.data}
        />
      )}
    </section>
  );
}

function Browser({ k8s, ns, table }: { k8s: K8s; ns: string; table: Table }) {
  const name = table.metadata.name;
  const pk = table.status?.primaryKey || table.spec.primaryKey || 'id';
  const model = useMemo(() => new RowsModel(k8s, ns, name, pk), [k8s, ns, name, pk]);
  const [, setTick] = useState(0);
  useEffect(() => {
    model.start(() => setTick((n) => n + 1));
    return () => model.stop();
  }, [model]);
  const columns = useMemo(() => columnsOf(pk, model.rows), [pk, model.rows]);
  const afterWrite = () => {
    // The watch shows writes; without it, load the page again.
    if (model.watchState !== 'live') void model.load();
  };
  return (
    <>
      <div class="toolbar">
        <table class="kv">
          <tbody>
            <tr>
              <th>Status</th>
              <ReadyCell testid="rows-table-ready" conditions={table.status?.conditions} />
              <th>Primary key</th>
              <td class="mono">{pk}</td>
              <th>Rows (approx.)</th>
              <td>{table.status?.approximateRows ?? '?'}</td>
            </tr>
          </tbody>
        </table>
        <LiveIndicator model={model} />
      </div>

      <div class="toolbar">
        <button type="button" data-testid="rows-first" disabled={model.page === 0} onClick={() => model.firstPage()}>
          « First
        </button>
        <button type="button" data-testid="rows-prev" disabled={model.page === 0} onClick={() => model.prevPage()}>
          ‹ Previous
        </button>
        <span data-testid="rows-page">page {model.page + 1}</span>
        <button type="button" data-testid="rows-next" disabled={!model.next} onClick={() => model.nextPage()}>
          Next ›
        </button>
        <label class="inline">
          rows per page{' '}
          <select
            data-testid="rows-limit"
            value={String(model.limit)}
            onChange={(e) => model.setLimit(Number(e.currentTarget.value))}
          >
            {[10, 25, 50, 100, 250].map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <button type="button" data-testid="rows-refresh" onClick={() => void model.load()}>
          Reload
        </button>
        {model.loading && <Spinner text="Loading rows…" />}
      </div>
      <ErrorBox error={model.error} />

      {model.loaded && model.rows.length === 0 && (
        <p class="muted" data-testid="rows-empty">
          No rows{model.page > 0 ? ' on this page' : ' yet'}.
        </p>
      )}
      {model.rows.length > 0 && (
        <table class="list rows" data-testid="rows-table">
          <thead>
            <tr>
              {columns.shown.map((c) => (
                <th key={c} class="mono">
                  {c}
                </th>
              ))}
              {columns.more > 0 && <th class="muted">+{columns.more} fields</th>}
              <th />
            </tr>
          </thead>
          <tbody>
            {model.rows.map((r) => {
              const key = model.keyOf(r);
              return (
                <RowLine
                  key={String(key)}
                  k8s={k8s}
                  ns={ns}
                  table={name}
                  row={r}
                  rowKey={key}
                  columns={columns}
                  flash={key !== undefined && model.flash.has(String(key))}
                  saved={(row) => {
                    model.put(row);
                    afterWrite();
                  }}
                  deleted={afterWrite}
                />
              );
            })}
          </tbody>
        </table>
      )}

      <RecentChanges model={model} />
      <InsertRows k8s={k8s} ns={ns} table={name} inserted={afterWrite} />
      <ImportRows k8s={k8s} ns={ns} table={name} imported={afterWrite} />
      <ExportRows k8s={k8s} ns={ns} table={name} />
    </>
  );
}

function LiveIndicator({ model }: { model: RowsModel }) {
  const s = model.watchState;
  const text = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', stopped: 'stopped' }[s];
  return (
    <span class={`live live-${s}`} data-testid="live-indicator" data-state={s}>
      <span class="dot" aria-hidden="true" /> {text}
      {s === 'reconnecting' && model.watchError && (
        <>
          <span class="small muted" data-testid="live-error">
            {' '}
            ({model.watchError.toString()})
          </span>{' '}
          <button type="button" data-testid="live-retry" onClick={() => model.retryWatch()}>
            Retry now
          </button>
        </>
      )}
    </span>
  );
}

interface Columns {
  shown: string[];
  more: number;
}

/** The primary key first, then the page's other fields, sorted. */
function columnsOf(pk: string, rows: Row[]): Columns {
  const fields = new Set<string>();
  for (const r of rows) for (const f of Object.keys(r)) if (f !== pk) fields.add(f);
  const rest = [...fields].sort();
  return { shown: [pk, ...rest.slice(0, MAX_COLUMNS - 1)], more: Math.max(0, rest.length - (MAX_COLUMNS - 1)) };
}

function cellText(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function RowLine(props: {
  k8s: K8s;
  ns: string;
  table: string;
  row: Row;
  rowKey: RowKey | undefined;
  columns: Columns;
  flash: boolean;
  saved: (row: Row) => void;
  deleted: () => void;
}) {
  const { k8s, ns, table, row, rowKey, columns, flash } = props;
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState('');
  const width = columns.shown.length + (columns.more > 0 ? 2 : 1);
  return (
    <>
      <tr data-testid="row" data-key={String(rowKey)} class={flash ? 'flash' : undefined}>
        {columns.shown.map((c) => {
          const s = cellText(row[c]);
          return (
            <td key={c} class="mono small" title={s.length > 60 ? s : undefined} data-field={c}>
              {s.length > 60 ? s.slice(0, 60) + '…' : s}
            </td>
          );
        })}
        {columns.more > 0 && <td />}
        <td class="actions">
          {rowKey !== undefined && (
            <>
              <button
                type="button"
                data-testid="row-edit"
                onClick={() => {
                  setText(JSON.stringify(row, null, 2));
                  setEditing(!editing);
                }}
              >
                Edit
              </button>
              <DeleteButton
                testid="row-delete"
                what={`row ${String(rowKey)}`}
                run={async () => {
                  await send('DELETE', k8s.rowsURL(ns, table, rowKey));
                  props.deleted();
                }}
              />
            </>
          )}
        </td>
      </tr>
      {editing && rowKey !== undefined && (
        <tr class="detail">
          <td colSpan={width}>
            <textarea
              class="json"
              data-testid="row-editor"
              rows={Math.min(20, text.split('\n').length + 1)}
              spellcheck={false}
              value={text}
              onInput={(e) => setText(e.currentTarget.value)}
            />
            <div>
              <ActionButton
                testid="row-save"
                label="Save (replace the row)"
                busyText="Saving…"
                run={async () => {
                  const stored = await call<Row>('PUT', k8s.rowsURL(ns, table, rowKey), {
                    body: text,
                    contentType: JSON_TYPE,
                  });
                  setEditing(false);
                  props.saved(stored);
                }}
              />
              <button type="button" data-testid="row-cancel" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </div>
          </td>
        </tr>
      )}
    </>
  );
}

function RecentChanges({ model }: { model: RowsModel }) {
  if (model.recent.length === 0) return null;
  return (
    <details class="card" open data-testid="recent-changes">
      <summary>Recent changes (live)</summary>
      <ul class="small">
        {model.recent.map((c, i) => (
          <li key={i} data-testid="recent-change" data-type={c.type} data-key={String(c.key)}>
            <span class="muted">{c.at.toLocaleTimeString()}</span> {c.type.toLowerCase()}{' '}
            <span class="mono">{String(c.key)}</span>
            {!c.here && <span class="muted"> (not on this page)</span>}
          </li>
        ))}
      </ul>
    </details>
  );
}

type Conflict = 'error' | 'replace' | 'update';

function ConflictSelect({ value, set, testid }: { value: Conflict; set: (c: Conflict) => void; testid: string }) {
  return (
    <Field label="If a key exists">
      <select data-testid={testid} value={value} onChange={(e) => set(e.currentTarget.value as Conflict)}>
        <option value="error">fail, write nothing</option>
        <option value="replace">replace the row</option>
        <option value="update">merge into the row</option>
      </select>
    </Field>
  );
}

function summary(r: InsertResult): string {
  return `inserted ${r.inserted}, replaced ${r.replaced}, unchanged ${r.unchanged}`;
}

function InsertRows({ k8s, ns, table, inserted }: { k8s: K8s; ns: string; table: string; inserted: () => void }) {
  const [text, setText] = useState('');
  const [conflict, setConflict] = useState<Conflict>('error');
  const [result, setResult] = useState('');
  return (
    <form class="card" data-testid="insert-form" onSubmit={(e) => e.preventDefault()}>
      <h3>Insert</h3>
      <Field label="A JSON object, or an array of objects">
        <textarea
          class="json"
          data-testid="insert-row-text"
          rows={4}
          spellcheck={false}
          value={text}
          placeholder={'{"id": "a1", "name": "first"}'}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </Field>
      <div class="inline-form">
        <ConflictSelect value={conflict} set={setConflict} testid="insert-conflict" />
        <ActionButton
          type="submit"
          testid="insert-row-button"
          label="Insert"
          busyText="Inserting…"
          disabled={!text.trim()}
          run={async () => {
            setResult('');
            const r = await call<InsertResult>('POST', k8s.rowsURL(ns, table, undefined, { conflict }), {
              body: text,
              contentType: JSON_TYPE,
            });
            setResult(summary(r));
            setText('');
            inserted();
          }}
        />
        {result && (
          <span class="ok" data-testid="insert-result">
            {result}
          </span>
        )}
      </div>
    </form>
  );
}

type Format = 'auto' | 'ndjson' | 'csv' | 'json';

/** The Content-Type of an import file: chosen, or from the file's name. */
export function importType(format: Format, fileName: string): string {
  const f = format !== 'auto' ? format : /\.csv$/i.test(fileName) ? 'csv' : /\.json$/i.test(fileName) ? 'json' : 'ndjson';
  return f === 'csv' ? CSV : f === 'json' ? JSON_TYPE : NDJSON;
}

function ImportRows({ k8s, ns, table, imported }: { k8s: K8s; ns: string; table: string; imported: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [format, setFormat] = useState<Format>('auto');
  const [conflict, setConflict] = useState<Conflict>('error');
  const [csvTypes, setCsvTypes] = useState<'strings' | 'infer'>('strings');
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [result, setResult] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [abort, setAbort] = useState<(() => void) | null>(null);
  const type = file ? importType(format, file.name) : '';
  const start = async () => {
    if (!file) return;
    setResult('');
    setError(null);
    setProgress({ sent: 0, total: file.size });
    const query: Record<string, string> = { conflict };
    if (type === CSV) query.csvTypes = csvTypes;
    const up = upload<InsertResult>(k8s.rowsURL(ns, table, undefined, query), file, type, (sent, total) =>
      setProgress({ sent, total }),
    );
    setAbort(() => up.abort);
    try {
      const r = await up.done;
      setResult(summary(r));
      imported();
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setProgress(null);
      setAbort(null);
    }
  };
  return (
    <form class="card" data-testid="import-form" onSubmit={(e) => e.preventDefault()}>
      <h3>Import</h3>
      <p class="muted small">
        NDJSON (one object per line), CSV (a header row of field names) or a JSON array. Every row needs its primary
        key. A batch is written whole or not at all.
      </p>
      <div class="inline-form">
        <Field label="File">
          <input type="file" data-testid="import-file" accept=".ndjson,.jsonl,.csv,.json" onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)} />
        </Field>
        <Field label="Format">
          <select data-testid="import-format" value={format} onChange={(e) => setFormat(e.currentTarget.value as Format)}>
            <option value="auto">from the file name</option>
            <option value="ndjson">NDJSON</option>
            <option value="csv">CSV</option>
            <option value="json">JSON</option>
          </select>
        </Field>
        <ConflictSelect value={conflict} set={setConflict} testid="import-conflict" />
        {type === CSV && (
          <Field label="CSV cells">
            <select data-testid="import-csv-types" value={csvTypes} onChange={(e) => setCsvTypes(e.currentTarget.value as 'strings' | 'infer')}>
              <option value="strings">stay text</option>
              <option value="infer">numbers, booleans, null, JSON read as such</option>
            </select>
          </Field>
        )}
        <button type="submit" data-testid="import-button" disabled={!file || !!progress} onClick={() => void start()}>
          Import
        </button>
      </div>
      {progress && (
        <div data-testid="import-progress" class="progress">
          <progress max={progress.total || 1} value={progress.sent} />{' '}
          {progress.sent < progress.total ? (
            <Spinner
              text={`Uploading ${formatBytes(progress.sent)} of ${formatBytes(progress.total)} (${Math.floor(
                (100 * progress.sent) / (progress.total || 1),
              )}%)`}
            />
          ) : (
            <Spinner text={`Uploaded ${formatBytes(progress.total)}; the server is writing the rows…`} />
          )}
          {abort && (
            <button type="button" data-testid="import-cancel" onClick={abort}>
              Cancel
            </button>
          )}
        </div>
      )}
      <ErrorBox error={error} />
      {result && (
        <p class="ok" data-testid="import-result">
          Imported: {result}
        </p>
      )}
    </form>
  );
}

function ExportRows({ k8s, ns, table }: { k8s: K8s; ns: string; table: string }) {
  const [progress, setProgress] = useState('');
  const exp = (format: 'ndjson' | 'csv') => async () => {
    setProgress('Exporting…');
    try {
      const res = await send('GET', k8s.rowsURL(ns, table), { accept: format === 'csv' ? CSV : NDJSON });
      const parts: string[] = [];
      let bytes = 0;
      await readText(res, (chunk, n) => {
        parts.push(chunk);
        bytes += n;
        setProgress(`Exporting… ${formatBytes(bytes)} received`);
      });
      saveBlob(new Blob(parts, { type: format === 'csv' ? CSV : NDJSON }), `${table}.${format}`);
    } finally {
      setProgress('');
    }
  };
  return (
    <div class="card inline-form" data-testid="export-form">
      <h3>Export</h3>
      <ActionButton testid="export-ndjson" label="Download NDJSON" run={exp('ndjson')} />
      <ActionButton testid="export-csv" label="Download CSV" run={exp('csv')} />
      {progress && <Spinner testid="export-progress" text={progress} />}
    </div>
  );
}
