// The UI's location lives in the URL's hash, so the portal serves one page
// and reloads keep the view:
//
//	#/clusters                          the clusters of this device
//	#/c/CLUSTER                         the cluster, in its default namespace
//	#/c/CLUSTER/NS/workspaces           workspaces of a namespace
//	#/c/CLUSTER/NS/data                 databases and tables
//	#/c/CLUSTER/NS/tables/TABLE         the row browser of a table

import { useEffect, useState } from 'preact/hooks';

export type Page = 'workspaces' | 'data' | 'rows';

export type Route =
  | { page: 'home' }
  | { page: 'clusters' }
  | { page: Page | 'cluster'; cluster: string; ns: string; table?: string };

export function parse(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '')
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  if (parts[0] === 'clusters') return { page: 'clusters' };
  if (parts[0] !== 'c' || !parts[1]) return { page: 'home' };
  const [, cluster, ns = '', page = 'workspaces', table] = parts;
  if (!ns) return { page: 'cluster', cluster, ns: '' };
  if (page === 'tables' && table) return { page: 'rows', cluster, ns, table };
  if (page === 'data') return { page: 'data', cluster, ns };
  return { page: 'workspaces', cluster, ns };
}

const e = encodeURIComponent;

export function href(r: Route): string {
  switch (r.page) {
    case 'home':
      return '#/';
    case 'clusters':
      return '#/clusters';
    case 'cluster':
      return `#/c/${e(r.cluster)}`;
    case 'rows':
      return `#/c/${e(r.cluster)}/${e(r.ns)}/tables/${e(r.table ?? '')}`;
    default:
      return `#/c/${e(r.cluster)}/${e(r.ns)}/${r.page}`;
  }
}

export function go(r: Route, replace = false): void {
  const h = href(r);
  if (replace) history.replaceState(null, '', h);
  else location.hash = h;
  // replaceState fires no hashchange: tell the listeners.
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.hash));
  useEffect(() => {
    const on = () => setRoute(parse(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
