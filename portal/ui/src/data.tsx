// Databases and tables of a namespace: list with status, create, delete.
// A table's name is "<database>.<table>".

import { useState } from 'preact/hooks';
import { ApiError, Cluster, Database, DeletionPolicy, GROUP_VERSION, K8s, Table, TableIndex } from './api';
import { href } from './router';
import { ActionButton, DeleteButton, ErrorBox, Field, ReadyCell, Spinner, usePoll } from './ui';

const POLL_MS = 3000;

export function DataView({ cluster, ns }: { cluster: Cluster; ns: string }) {
  const k8s = new K8s(cluster.id);
  const dbs = usePoll((signal) => k8s.list<Database>(ns, 'databases', signal), [cluster.id, ns], POLL_MS);
  const tables = usePoll((signal) => k8s.list<Table>(ns, 'tables', signal), [cluster.id, ns], POLL_MS);
  const reload = () => {
    dbs.reload();
    tables.reload();
  };
  return (
    <section>
      <h2>
        Databases <span class="muted small">in {ns}</span>
      </h2>
      <ErrorBox error={dbs.error} />
      {!dbs.data && dbs.loading && <Spinner text="Loading databases…" />}
      {dbs.data && dbs.data.length === 0 && (
        <p class="muted" data-testid="db-empty">
          No databases in {ns} yet.
        </p>
      )}
      {dbs.data && dbs.data.length > 0 && (
        <table class="list" data-testid="db-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>RethinkDB name</th>
              <th>Tables</th>
              <th>Deletion policy</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {dbs.data.map((d) => (
              <tr key={d.metadata.name} data-testid="db-row" data-name={d.metadata.name}>
                <td class="mono">{d.metadata.name}</td>
                <td class="mono small">{d.status?.rethinkDBName}</td>
                <td>{d.status?.tables ?? 0}</td>
                <td>{d.spec.deletionPolicy || 'Retain'}</td>
                <ReadyCell testid="db-ready" conditions={d.status?.conditions} />
                <td class="actions">
                  <DeleteButton
                    testid="db-delete"
                    what={`database ${d.metadata.name}${d.spec.deletionPolicy === 'Delete' ? ' and its data' : ''}`}
                    run={async () => {
                      await k8s.remove(ns, 'databases', d.metadata.name);
                      reload();
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <CreateDatabase k8s={k8s} ns={ns} created={reload} />

      <h2>
        Tables <span class="muted small">in {ns}</span>
      </h2>
      <ErrorBox error={tables.error} />
      {!tables.data && tables.loading && <Spinner text="Loading tables…" />}
      {tables.data && tables.data.length === 0 && (
        <p class="muted" data-testid="table-empty">
          No tables in {ns} yet.
        </p>
      )}
      {tables.data && tables.data.length > 0 && (
        <table class="list" data-testid="table-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Primary key</th>
              <th>Indexes</th>
              <th>Rows (approx.)</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {tables.data.map((t) => (
              <tr key={t.metadata.name} data-testid="table-row" data-name={t.metadata.name}>
                <td class="mono">
                  <a
                    data-testid="table-browse"
                    href={href({ page: 'rows', cluster: cluster.id, ns, table: t.metadata.name })}
                  >
                    {t.metadata.name}
                  </a>
                </td>
                <td class="mono">{t.status?.primaryKey || t.spec.primaryKey || 'id'}</td>
                <td class="mono small">{(t.spec.indexes ?? []).map(indexText).join('; ')}</td>
                <td>{t.status?.approximateRows ?? ''}</td>
                <ReadyCell testid="table-ready" conditions={t.status?.conditions} />
                <td class="actions">
                  <a
                    class="button"
                    href={href({ page: 'rows', cluster: cluster.id, ns, table: t.metadata.name })}
                    data-testid="table-rows"
                  >
                    Rows
                  </a>
                  <DeleteButton
                    testid="table-delete"
                    what={`table ${t.metadata.name}${t.spec.deletionPolicy === 'Delete' ? ' and its rows' : ''}`}
                    run={async () => {
                      await k8s.remove(ns, 'tables', t.metadata.name);
                      reload();
                    }}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <CreateTable k8s={k8s} ns={ns} databases={(dbs.data ?? []).map((d) => d.metadata.name)} created={reload} />
    </section>
  );
}

function indexText(i: TableIndex): string {
  const fields = i.fields?.length ? i.fields : [i.name];
  return `${i.name}(${fields.join(',')})${i.multi ? ' multi' : ''}`;
}

function CreateDatabase({ k8s, ns, created }: { k8s: K8s; ns: string; created: () => void }) {
  const [name, setName] = useState('');
  const [policy, setPolicy] = useState<DeletionPolicy>('Retain');
  return (
    <form class="card inline-form" data-testid="db-create-form" onSubmit={(e) => e.preventDefault()}>
      <Field label="New database">
        <input data-testid="db-name" value={name} placeholder="orders" onInput={(e) => setName(e.currentTarget.value.trim())} />
      </Field>
      <Field label="On delete">
        <select data-testid="db-deletion-policy" value={policy} onChange={(e) => setPolicy(e.currentTarget.value as DeletionPolicy)}>
          <option value="Retain">Retain the data</option>
          <option value="Delete">Delete the data</option>
        </select>
      </Field>
      <ActionButton
        type="submit"
        testid="db-create"
        label="Create database"
        busyText="Creating…"
        run={async () => {
          const db: Database = {
            apiVersion: GROUP_VERSION,
            kind: 'Database',
            metadata: { name },
            spec: { deletionPolicy: policy },
          };
          await k8s.create(ns, 'databases', db);
          setName('');
          created();
        }}
      />
    </form>
  );
}

/**
 * Index lines: "name" (on the field of that name), "name: a, b" (compound),
 * with " multi" at the end for a multi index.
 */
export function parseIndexes(text: string): TableIndex[] {
  const out: TableIndex[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (!line) continue;
    let multi = false;
    if (/\s+multi$/.test(line)) {
      multi = true;
      line = line.replace(/\s+multi$/, '');
    }
    const [name, fields] = line.split(':', 2).map((s) => s.trim());
    if (!name) throw new ApiError(0, `indexes: "${raw.trim()}" has no index name`);
    const idx: TableIndex = { name };
    if (fields) idx.fields = fields.split(',').map((s) => s.trim()).filter(Boolean);
    if (multi) idx.multi = true;
    out.push(idx);
  }
  return out;
}

function CreateTable(props: { k8s: K8s; ns: string; databases: string[]; created: () => void }) {
  const { k8s, ns, databases, created } = props;
  const empty = { database: '', table: '', primaryKey: 'id', durability: 'hard', deletionPolicy: 'Retain', indexes: '' };
  const [f, setF] = useState(empty);
  const set = (k: keyof typeof empty) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const database = f.database || databases[0] || '';
  return (
    <form class="card" data-testid="table-create-form" onSubmit={(e) => e.preventDefault()}>
      <h3>New table</h3>
      <div class="grid">
        <Field label="Database">
          <select data-testid="table-database" value={database} onChange={set('database')}>
            {databases.length === 0 && <option value="">(create a database first)</option>}
            {databases.map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Table" hint={database && f.table ? `object name: ${database}.${f.table}` : 'e.g. items'}>
          <input data-testid="table-name" value={f.table} placeholder="items" onInput={set('table')} />
        </Field>
        <Field label="Primary key" hint="immutable">
          <input data-testid="table-primary-key" value={f.primaryKey} onInput={set('primaryKey')} />
        </Field>
        <Field label="Durability">
          <select data-testid="table-durability" value={f.durability} onChange={set('durability')}>
            <option value="hard">hard</option>
            <option value="soft">soft</option>
          </select>
        </Field>
        <Field label="On delete">
          <select data-testid="table-deletion-policy" value={f.deletionPolicy} onChange={set('deletionPolicy')}>
            <option value="Retain">Retain the rows</option>
            <option value="Delete">Delete the rows</option>
          </select>
        </Field>
      </div>
      <Field label="Secondary indexes" hint={'one per line: "name", "name: field1, field2", add " multi" for a multi index'}>
        <textarea data-testid="table-indexes" rows={2} spellcheck={false} value={f.indexes} onInput={set('indexes')} />
      </Field>
      <ActionButton
        type="submit"
        testid="table-create"
        label="Create table"
        busyText="Creating…"
        disabled={!database}
        run={async () => {
          const spec: Table['spec'] = {
            primaryKey: f.primaryKey.trim() || undefined,
            durability: f.durability as 'hard' | 'soft',
            deletionPolicy: f.deletionPolicy as DeletionPolicy,
          };
          const indexes = parseIndexes(f.indexes);
          if (indexes.length) spec.indexes = indexes;
          const t: Table = {
            apiVersion: GROUP_VERSION,
            kind: 'Table',
            metadata: { name: `${database}.${f.table.trim()}` },
            spec,
          };
          await k8s.create(ns, 'tables', t);
          setF({ ...empty, database });
          created();
        }}
      />
    </form>
  );
}
