// The portal's single-page app: a header with cluster and namespace pickers,
// and one view per page of the route (router.ts).

import { ComponentChildren, render } from 'preact';
import { useEffect } from 'preact/hooks';
import { Cluster, K8s, portal } from './api';
import { ClustersView } from './clusters';
import { DataView } from './data';
import { Route, go, href, useRoute } from './router';
import { RowsView } from './rows';
import { ErrorBox, Polled, Spinner, usePoll } from './ui';
import { WorkspacesView } from './workspaces';
import './app.css';

function App() {
  const route = useRoute();
  const clusters = usePoll(() => portal.clusters(), []);
  const list = clusters.data;
  const cluster = 'cluster' in route ? list?.find((c) => c.id === route.cluster) : undefined;

  // Fill in what the URL leaves out: a cluster, then its default namespace.
  useEffect(() => {
    if (!list) return;
    if (route.page === 'home') {
      go(list.length ? { page: 'workspaces', cluster: list[0].id, ns: defaultNamespace(list[0]) } : { page: 'clusters' }, true);
    } else if (route.page === 'cluster' && cluster) {
      go({ page: 'workspaces', cluster: cluster.id, ns: defaultNamespace(cluster) }, true);
    }
  }, [list, route.page, cluster]);

  return (
    <>
      <header>
        <a class="brand" href="#/">
          GuildNet
        </a>
        {list && list.length > 0 && <ClusterPicker route={route} clusters={list} />}
        {cluster && 'ns' in route && route.ns && <NamespacePicker route={route} cluster={cluster} />}
        <nav>
          {cluster && 'ns' in route && route.ns && (
            <>
              <NavLink route={route} to={{ page: 'workspaces', cluster: cluster.id, ns: route.ns }} testid="nav-workspaces">
                Workspaces
              </NavLink>
              <NavLink route={route} to={{ page: 'data', cluster: cluster.id, ns: route.ns }} testid="nav-data">
                Databases &amp; tables
              </NavLink>
            </>
          )}
          <NavLink route={route} to={{ page: 'clusters' }} testid="nav-clusters">
            Clusters
          </NavLink>
        </nav>
      </header>
      <main>
        <Page route={route} clusters={clusters} cluster={cluster} />
      </main>
    </>
  );
}

function Page({ route, clusters, cluster }: { route: Route; clusters: Polled<Cluster[]>; cluster?: Cluster }) {
  if (route.page === 'clusters') return <ClustersView clusters={clusters} />;
  if (!clusters.data) {
    return clusters.error ? <ErrorBox error={clusters.error} /> : <Spinner text="Loading clusters…" />;
  }
  if (route.page === 'home') return null;
  if (!cluster) {
    return (
      <p class="error" data-testid="cluster-missing">
        This device has not joined a cluster with the id "{route.cluster}". <a href="#/clusters">Clusters</a>
      </p>
    );
  }
  switch (route.page) {
    case 'workspaces':
      return <WorkspacesView cluster={cluster} ns={route.ns} />;
    case 'data':
      return <DataView cluster={cluster} ns={route.ns} />;
    case 'rows':
      return <RowsView cluster={cluster} ns={route.ns} table={route.table ?? ''} />;
  }
  return null;
}

function defaultNamespace(c: Cluster): string {
  return c.settings?.defaultNamespace || 'default';
}

function NavLink(props: { route: Route; to: Route; testid: string; children: ComponentChildren }) {
  const active = props.route.page === props.to.page || (props.route.page === 'rows' && props.to.page === 'data');
  return (
    <a href={href(props.to)} class={active ? 'active' : undefined} data-testid={props.testid}>
      {props.children}
    </a>
  );
}

function ClusterPicker({ route, clusters }: { route: Route; clusters: Cluster[] }) {
  const current = 'cluster' in route ? route.cluster : '';
  return (
    <select
      data-testid="cluster-select"
      aria-label="Cluster"
      value={current}
      onChange={(e) => {
        const c = clusters.find((x) => x.id === e.currentTarget.value);
        if (c) go({ page: route.page === 'data' ? 'data' : 'workspaces', cluster: c.id, ns: defaultNamespace(c) });
      }}
    >
      {!current && <option value="">Choose a cluster…</option>}
      {clusters.map((c) => (
        <option key={c.id} value={c.id}>
          {c.name || c.id}
        </option>
      ))}
    </select>
  );
}

/**
 * Namespaces from /api/v1/namespaces. Someone who may not list namespaces
 * gets a text field instead (and the reason).
 */
function NamespacePicker({ route, cluster }: { route: Route & { ns: string }; cluster: Cluster }) {
  const names = usePoll((signal) => new K8s(cluster.id).namespaces(signal), [cluster.id]);
  const page = route.page === 'rows' ? 'data' : route.page === 'data' ? 'data' : 'workspaces';
  const choose = (ns: string) => ns && ns !== route.ns && go({ page, cluster: cluster.id, ns });
  if (names.error) {
    return (
      <span class="ns-picker">
        <input
          data-testid="namespace-input"
          aria-label="Namespace"
          value={route.ns}
          onChange={(e) => choose(e.currentTarget.value.trim())}
        />
        <span class="small muted" title={names.error.toString()} data-testid="namespace-error">
          (cannot list namespaces: HTTP {names.error.code || '—'})
        </span>
      </span>
    );
  }
  const options = [...new Set([...(names.data ?? []), route.ns, defaultNamespace(cluster)])].sort();
  return (
    <select
      data-testid="namespace-select"
      aria-label="Namespace"
      value={route.ns}
      onChange={(e) => choose(e.currentTarget.value)}
    >
      {options.map((n) => (
        <option key={n} value={n}>
          {n}
        </option>
      ))}
    </select>
  );
}

render(<App />, document.getElementById('app')!);
