// The clusters this device has joined: join (file upload or paste), remove,
// export a join file, per-cluster settings.

import { useState } from 'preact/hooks';
import { Cluster, Exposure, Settings, portal } from './api';
import { href } from './router';
import { ActionButton, DeleteButton, ErrorBox, Field, Polled } from './ui';

export function ClustersView({ clusters }: { clusters: Polled<Cluster[]> }) {
  return (
    <section>
      <h2>Clusters</h2>
      <ErrorBox error={clusters.error} />
      {clusters.data && clusters.data.length === 0 && (
        <p class="muted" data-testid="clusters-empty">
          No cluster joined yet. Join one with the guildnet.config (or kubeconfig) its admin gave you.
        </p>
      )}
      {clusters.data && clusters.data.length > 0 && (
        <table class="list" data-testid="clusters-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>ID</th>
              <th>Server</th>
              <th>Defaults</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {clusters.data.map((c) => (
              <ClusterRow key={c.id} cluster={c} reload={clusters.reload} />
            ))}
          </tbody>
        </table>
      )}
      <JoinForm joined={clusters.reload} />
    </section>
  );
}

function ClusterRow({ cluster: c, reload }: { cluster: Cluster; reload: () => void }) {
  const [editing, setEditing] = useState(false);
  const s = c.settings ?? {};
  return (
    <>
      <tr data-testid="cluster-row" data-cluster-id={c.id}>
        <td>
          <a href={href({ page: 'cluster', cluster: c.id, ns: '' })} data-testid="cluster-open">
            {c.name || c.id}
          </a>
        </td>
        <td class="mono">{c.id}</td>
        <td class="mono">{c.server}</td>
        <td class="small">
          namespace {s.defaultNamespace || 'default'}, {s.defaultExposure || 'ClusterIP'}
          {s.imagePullSecret ? `, pull secret ${s.imagePullSecret}` : ''}
        </td>
        <td class="actions">
          <button type="button" data-testid="cluster-settings" onClick={() => setEditing(!editing)}>
            Settings
          </button>
          <a class="button" href={portal.exportURL(c.id)} download={`${c.id}.guildnet.config`} data-testid="cluster-export">
            Export
          </a>
          <DeleteButton
            testid="cluster-remove"
            verb="Remove"
            what={`cluster ${c.name || c.id} from this device (the cluster itself is not touched)`}
            run={async () => {
              await portal.remove(c.id);
              reload();
            }}
          />
        </td>
      </tr>
      {editing && (
        <tr class="detail">
          <td colSpan={5}>
            <SettingsForm
              cluster={c}
              saved={() => {
                setEditing(false);
                reload();
              }}
            />
          </td>
        </tr>
      )}
    </>
  );
}

function SettingsForm({ cluster, saved }: { cluster: Cluster; saved: () => void }) {
  const [s, setS] = useState<Settings>({
    defaultNamespace: cluster.settings?.defaultNamespace ?? '',
    imagePullSecret: cluster.settings?.imagePullSecret ?? '',
    defaultExposure: cluster.settings?.defaultExposure ?? 'ClusterIP',
  });
  return (
    <form class="inline-form" data-testid="settings-form" onSubmit={(e) => e.preventDefault()}>
      <Field label="Default namespace">
        <input
          data-testid="settings-namespace"
          value={s.defaultNamespace}
          placeholder="default"
          onInput={(e) => setS({ ...s, defaultNamespace: e.currentTarget.value.trim() })}
        />
      </Field>
      <Field label="Image pull secret" hint="a Secret in the namespace; empty for none">
        <input
          data-testid="settings-pull-secret"
          value={s.imagePullSecret}
          onInput={(e) => setS({ ...s, imagePullSecret: e.currentTarget.value.trim() })}
        />
      </Field>
      <Field label="Default exposure">
        <select
          data-testid="settings-exposure"
          value={s.defaultExposure}
          onChange={(e) => setS({ ...s, defaultExposure: e.currentTarget.value as Exposure })}
        >
          <option value="ClusterIP">ClusterIP (through the portal only)</option>
          <option value="LoadBalancer">LoadBalancer</option>
        </select>
      </Field>
      <ActionButton
        type="submit"
        testid="settings-save"
        label="Save settings"
        busyText="Saving…"
        run={async () => {
          await portal.saveSettings(cluster.id, s);
          saved();
        }}
      />
    </form>
  );
}

function JoinForm({ joined }: { joined: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [text, setText] = useState('');
  const [name, setName] = useState('');
  const [allowPlugins, setAllowPlugins] = useState(false);
  const [result, setResult] = useState<Cluster | null>(null);
  const [fileKey, setFileKey] = useState(0);
  return (
    <form class="card" data-testid="join-form" onSubmit={(e) => e.preventDefault()}>
      <h3>Join a cluster</h3>
      <p class="muted small">
        Upload or paste the <code>guildnet.config</code> (or a kubeconfig) of the cluster. The portal checks the
        cluster before it keeps anything.
      </p>
      <Field label="File">
        <input
          key={fileKey}
          type="file"
          data-testid="join-file"
          onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
        />
      </Field>
      <Field label="…or paste it">
        <textarea
          data-testid="join-text"
          rows={6}
          spellcheck={false}
          value={text}
          disabled={!!file}
          placeholder={'apiVersion: v1\nkind: Config\n…'}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </Field>
      <Field label="Name" hint="optional; the file's name otherwise">
        <input data-testid="join-name" value={name} onInput={(e) => setName(e.currentTarget.value.trim())} />
      </Field>
      <label class="check">
        <input
          type="checkbox"
          data-testid="join-allow-plugins"
          checked={allowPlugins}
          onChange={(e) => setAllowPlugins(e.currentTarget.checked)}
        />
        Allow exec / auth-provider credential plugins
      </label>
      {allowPlugins && (
        <p class="warning" data-testid="join-plugins-warning">
          A kubeconfig with an exec or auth-provider user runs a program on this device every time the portal talks
          to the cluster. Allow it only for a file from someone you trust, and only if you know which program it
          runs.
        </p>
      )}
      <ActionButton
        type="submit"
        testid="join-button"
        label="Join"
        busyText="Checking the cluster (up to 10 s)…"
        disabled={!file && !text.trim()}
        run={async () => {
          setResult(null);
          const c = await portal.join(file ?? text, name, allowPlugins);
          setResult(c);
          setText('');
          setName('');
          setAllowPlugins(false);
          setFile(null);
          setFileKey((k) => k + 1);
          joined();
        }}
      />
      {result && (
        <p class="ok" data-testid="join-result">
          Joined {result.name || result.id} ({result.server}).{' '}
          <a href={href({ page: 'cluster', cluster: result.id, ns: '' })}>Open it</a>
        </p>
      )}
    </form>
  );
}
