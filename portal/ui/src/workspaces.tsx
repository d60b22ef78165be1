// Workspaces of a namespace: list with phase and readiness, create,
// suspend/resume, delete, follow logs, open in an iframe.

import { useEffect, useRef, useState } from 'preact/hooks';
import {
  ApiError,
  Cluster,
  Exposure,
  GROUP_VERSION,
  K8s,
  Workspace,
  WorkspaceSpec,
  asApiError,
  isAbort,
  portal,
  readText,
  send,
} from './api';
import { ActionButton, DeleteButton, ErrorBox, Field, Spinner, ready, usePoll } from './ui';

export const DEFAULT_IMAGE = 'codercom/code-server:4.99.0';
const POLL_MS = 3000;

type Panel = { kind: 'logs' | 'open'; name: string } | null;

export function WorkspacesView({ cluster, ns }: { cluster: Cluster; ns: string }) {
  const k8s = new K8s(cluster.id);
  const list = usePoll((signal) => k8s.list<Workspace>(ns, 'workspaces', signal), [cluster.id, ns], POLL_MS);
  const [panel, setPanel] = useState<Panel>(null);
  const items = list.data ?? [];
  return (
    <section>
      <h2>
        Workspaces <span class="muted small">in {ns}</span>
      </h2>
      <ErrorBox error={list.error} />
      {!list.data && list.loading && <Spinner text="Loading workspaces…" />}
      {list.data && items.length === 0 && (
        <p class="muted" data-testid="ws-empty">
          No workspaces in {ns} yet.
        </p>
      )}
      {items.length > 0 && (
        <table class="list" data-testid="ws-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Image</th>
              <th>Phase</th>
              <th>Ready</th>
              <th>Reason</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((w) => (
              <WorkspaceRow key={w.metadata.name} k8s={k8s} ns={ns} w={w} reload={list.reload} setPanel={setPanel} />
            ))}
          </tbody>
        </table>
      )}
      {panel?.kind === 'logs' && (
        <LogView key={`${cluster.id}/${ns}/${panel.name}`} k8s={k8s} ns={ns} name={panel.name} close={() => setPanel(null)} />
      )}
      {panel?.kind === 'open' && (
        <OpenView key={`${cluster.id}/${ns}/${panel.name}`} cluster={cluster.id} ns={ns} name={panel.name} close={() => setPanel(null)} />
      )}
      <CreateWorkspace k8s={k8s} ns={ns} cluster={cluster} created={list.reload} />
    </section>
  );
}

function WorkspaceRow(props: {
  k8s: K8s;
  ns: string;
  w: Workspace;
  reload: () => void;
  setPanel: (p: Panel) => void;
}) {
  const { k8s, ns, w, reload, setPanel } = props;
  const name = w.metadata.name;
  const st = w.status ?? {};
  const c = ready(st.conditions);
  const suspended = !!w.spec.suspend;
  const deleting = !!w.metadata.deletionTimestamp;
  const setSuspend = async (suspend: boolean) => {
    await k8s.patch(ns, 'workspaces', name, { spec: { suspend } });
    reload();
  };
  return (
    <tr data-testid="ws-row" data-name={name}>
      <td class="mono">{name}</td>
      <td class="mono small">{w.spec.image}</td>
      <td data-testid="ws-phase" data-phase={st.phase ?? ''}>
        {deleting ? 'Deleting' : st.phase || 'Pending'}
        {suspended && st.phase !== 'Stopped' && <span class="muted small"> (suspending)</span>}
      </td>
      <td data-testid="ws-ready">{st.readyReplicas ?? 0}</td>
      <td data-testid="ws-reason" class="small" data-status={c?.status ?? ''}>
        {c ? (
          <>
            <span class={c.status === 'True' ? 'ok' : 'bad'}>{c.reason || c.status}</span>
            {c.message && <div class="message">{c.message}</div>}
          </>
        ) : (
          <span class="muted">no status yet</span>
        )}
      </td>
      <td class="actions">
        <button type="button" data-testid="ws-open" disabled={suspended} onClick={() => setPanel({ kind: 'open', name })}>
          Open
        </button>
        <button type="button" data-testid="ws-logs" onClick={() => setPanel({ kind: 'logs', name })}>
          Logs
        </button>
        {suspended ? (
          <ActionButton testid="ws-resume" label="Resume" busyText="Resuming…" run={() => setSuspend(false)} />
        ) : (
          <ActionButton testid="ws-suspend" label="Suspend" busyText="Suspending…" run={() => setSuspend(true)} />
        )}
        <DeleteButton
          testid="ws-delete"
          what={`workspace ${name}`}
          run={async () => {
            await k8s.remove(ns, 'workspaces', name);
            reload();
          }}
        />
      </td>
    </tr>
  );
}

/** "8080" or "http:8080, 3000" → ports. */
export function parsePorts(text: string): { name?: string; port: number }[] {
  const ports: { name?: string; port: number }[] = [];
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(?:([a-z0-9-]+):)?(\d+)$/i.exec(part);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new ApiError(0, `ports: "${part}" is not a port (1-65535) or name:port`);
    ports.push(m[1] ? { name: m[1], port } : { port });
  }
  return ports;
}

/** KEY=VALUE lines → env. */
export function parseEnv(text: string): { name: string; value: string }[] {
  const env: { name: string; value: string }[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const i = line.indexOf('=');
    if (i <= 0) throw new ApiError(0, `env: "${line.trim()}" is not NAME=value`);
    env.push({ name: line.slice(0, i).trim(), value: line.slice(i + 1) });
  }
  return env;
}

function CreateWorkspace({ k8s, ns, cluster, created }: { k8s: K8s; ns: string; cluster: Cluster; created: () => void }) {
  const defaults = () => ({
    name: '',
    image: DEFAULT_IMAGE,
    ports: '8080',
    env: '',
    storage: '',
    exposure: (cluster.settings?.defaultExposure || 'ClusterIP') as Exposure,
    pullSecrets: cluster.settings?.imagePullSecret ?? '',
  });
  const [f, setF] = useState(defaults);
  const [done, setDone] = useState('');
  const set = (k: keyof ReturnType<typeof defaults>) => (e: Event) =>
    setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const create = async () => {
    setDone('');
    const spec: WorkspaceSpec = { image: f.image.trim() };
    const ports = parsePorts(f.ports);
    if (ports.length) spec.ports = ports;
    const env = parseEnv(f.env);
    if (env.length) spec.env = env;
    if (f.storage.trim()) spec.storage = { size: f.storage.trim() };
    spec.exposure = f.exposure;
    const secrets = f.pullSecrets.split(/[\s,]+/).filter(Boolean);
    if (secrets.length) spec.imagePullSecrets = secrets;
    const ws: Workspace = { apiVersion: GROUP_VERSION, kind: 'Workspace', metadata: { name: f.name.trim() }, spec };
    await k8s.create(ns, 'workspaces', ws);
    setDone(f.name.trim());
    setF(defaults());
    created();
  };
  return (
    <form class="card" data-testid="ws-create-form" onSubmit={(e) => e.preventDefault()}>
      <h3>New workspace</h3>
      <div class="grid">
        <Field label="Name">
          <input data-testid="ws-name" value={f.name} onInput={set('name')} placeholder="alice-ide" required />
        </Field>
        <Field label="Image">
          <input data-testid="ws-image" value={f.image} onInput={set('image')} />
        </Field>
        <Field label="Ports" hint="e.g. 8080 or http:8080, 3000">
          <input data-testid="ws-ports" value={f.ports} onInput={set('ports')} />
        </Field>
        <Field label="Storage size" hint="e.g. 10Gi; empty: no persistent home">
          <input data-testid="ws-storage" value={f.storage} onInput={set('storage')} />
        </Field>
        <Field label="Exposure">
          <select data-testid="ws-exposure" value={f.exposure} onChange={set('exposure')}>
            <option value="ClusterIP">ClusterIP</option>
            <option value="LoadBalancer">LoadBalancer</option>
          </select>
        </Field>
        <Field label="Image pull secrets" hint="comma separated">
          <input data-testid="ws-pull-secrets" value={f.pullSecrets} onInput={set('pullSecrets')} />
        </Field>
      </div>
      <Field label="Environment" hint="NAME=value, one per line">
        <textarea data-testid="ws-env" rows={3} spellcheck={false} value={f.env} onInput={set('env')} />
      </Field>
      <ActionButton type="submit" testid="ws-create" label="Create workspace" busyText="Creating…" run={create} />
      {done && (
        <span class="ok" data-testid="ws-created">
          {' '}
          Created {done}; it shows up above and starts in the background.
        </span>
      )}
    </form>
  );
}

const MAX_LOG_CHARS = 512 * 1024;

/** Follows a workspace's log (workspaces/log?follow=true) in a streamed fetch. */
function LogView({ k8s, ns, name, close }: { k8s: K8s; ns: string; name: string; close: () => void }) {
  const [text, setText] = useState('');
  const [state, setState] = useState<'connecting' | 'following' | 'ended' | 'stopped'>('connecting');
  const [error, setError] = useState<ApiError | null>(null);
  const [run, setRun] = useState(0);
  const ctl = useRef<AbortController | null>(null);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const c = new AbortController();
    ctl.current = c;
    setText('');
    setError(null);
    setState('connecting');
    const url = `${k8s.url(ns, 'workspaces', name, 'log')}?follow=true&tailLines=200`;
    (async () => {
      try {
        const res = await send('GET', url, { accept: 'text/plain', signal: c.signal });
        setState('following');
        await readText(res, (chunk) => setText((t) => (t + chunk).slice(-MAX_LOG_CHARS)));
        setState('ended');
      } catch (e) {
        if (isAbort(e)) return;
        setError(asApiError(e));
        setState('ended');
      }
    })();
    return () => c.abort();
  }, [k8s.cluster, ns, name, run]);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [text]);
  return (
    <div class="card panel" data-testid="ws-log-panel">
      <div class="panel-head">
        <h3>
          Log of <span class="mono">{name}</span>
        </h3>
        <span data-testid="ws-log-state" data-state={state}>
          {state === 'connecting' && <Spinner text="Connecting…" />}
          {state === 'following' && <span class="live-dot">following</span>}
          {state === 'ended' && <span class="muted">stream ended</span>}
          {state === 'stopped' && <span class="muted">stopped</span>}
        </span>
        {state === 'following' || state === 'connecting' ? (
          <button
            type="button"
            data-testid="ws-log-stop"
            onClick={() => {
              ctl.current?.abort();
              setState('stopped');
            }}
          >
            Stop
          </button>
        ) : (
          <button type="button" data-testid="ws-log-follow" onClick={() => setRun((r) => r + 1)}>
            Follow again
          </button>
        )}
        <button type="button" data-testid="ws-log-close" onClick={close}>
          Close
        </button>
      </div>
      <ErrorBox error={error} />
      <pre class="log" ref={pre} data-testid="ws-log">
        {text}
      </pre>
    </div>
  );
}

/**
 * Opens a workspace on its own origin: the portal answers a one-time URL
 * (CONTRACT.md) that the iframe loads. "New tab" asks for another one.
 */
function OpenView({ cluster, ns, name, close }: { cluster: string; ns: string; name: string; close: () => void }) {
  const [url, setUrl] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    let live = true;
    portal.openWorkspace(cluster, ns, name).then(
      (r) => live && setUrl(r.url),
      (e) => live && setError(asApiError(e)),
    );
    return () => {
      live = false;
    };
  }, [cluster, ns, name]);
  const newTab = async () => {
    // Open the tab while the click still counts as a user gesture, then
    // point it at a fresh one-time URL; the workspace gets no opener.
    const w = window.open('about:blank', '_blank');
    if (w) w.opener = null;
    try {
      const r = await portal.openWorkspace(cluster, ns, name);
      if (w) w.location.href = r.url;
      else throw new ApiError(0, `the browser blocked the new tab; open ${r.url} yourself`);
    } catch (e) {
      w?.close();
      throw e;
    }
  };
  return (
    <div class="card panel" data-testid="ws-open-panel">
      <div class="panel-head">
        <h3>
          <span class="mono">{name}</span>
        </h3>
        {url && (
          <span class="small mono" data-testid="ws-open-url">
            {url}
          </span>
        )}
        <ActionButton testid="ws-open-tab" label="Open in new tab" run={newTab} />
        <button type="button" data-testid="ws-open-close" onClick={close}>
          Close
        </button>
      </div>
      <ErrorBox error={error} />
      {!url && !error && <Spinner text="Opening the workspace…" />}
      {url && (
        <iframe
          class="workspace"
          data-testid="ws-frame"
          src={url}
          title={`workspace ${name}`}
          allow="clipboard-read; clipboard-write"
        />
      )}
    </div>
  );
}
