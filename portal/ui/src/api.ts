// Fetch helpers for the portal's HTTP contract (portal/CONTRACT.md): the
// portal's own /api/clusters endpoints and /clusters/{id}/k8s/..., which is
// the cluster's Kubernetes API. Every request is same-origin, so the browser
// sends the session cookie and, on state-changing requests, the Origin header
// the portal checks.

/** A Kubernetes metav1.Status, the shape of every API error. */
export interface Status {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: { reason?: string; message?: string; field?: string }[] };
}

/** An API error: the HTTP code and the Status the server sent (or the body text). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason = '',
    readonly causes: string[] = [],
  ) {
    super(message);
  }

  /** "HTTP 409 AlreadyExists: message" — what the UI shows. Code 0: no answer (network) or bad input. */
  override toString(): string {
    if (!this.code) return this.message;
    return `HTTP ${this.code}${this.reason ? ' ' + this.reason : ''}: ${this.message}`;
  }

  static fromStatus(httpCode: number, s: Status): ApiError {
    const causes = (s.details?.causes ?? []).map((c) =>
      [c.field, c.message ?? c.reason].filter(Boolean).join(': '),
    );
    return new ApiError(s.code || httpCode, s.message || s.reason || `request failed`, s.reason ?? '', causes);
  }
}

/** Turns any thrown value into an ApiError (network failures get code 0). */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof Error) return new ApiError(0, e.message);
  return new ApiError(0, String(e));
}

export function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

/** Reads a failed response into an ApiError, keeping the server's words. */
export async function errorFrom(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  return errorFromText(res.status, res.statusText, text);
}

export function errorFromText(code: number, statusText: string, text: string): ApiError {
  try {
    const s = JSON.parse(text) as Status;
    if (s && typeof s === 'object' && (s.kind === 'Status' || typeof s.message === 'string')) {
      return ApiError.fromStatus(code, s);
    }
  } catch {
    // not JSON: use the text
  }
  return new ApiError(code, text.trim().slice(0, 2000) || statusText || 'request failed');
}

export const JSON_TYPE = 'application/json';
export const MERGE_PATCH = 'application/merge-patch+json';
export const NDJSON = 'application/x-ndjson';
export const CSV = 'text/csv';

export interface RequestOptions {
  /** An object is sent as JSON; a string or Blob as is. */
  body?: unknown;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

/** Sends a request and returns the response when it is 2xx; otherwise throws its ApiError. */
export async function send(method: string, url: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: opts.accept ?? JSON_TYPE };
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string' || opts.body instanceof Blob) {
      body = opts.body;
    } else {
      body = JSON.stringify(opts.body);
    }
    headers['Content-Type'] = opts.contentType ?? JSON_TYPE;
  }
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body, signal: opts.signal, credentials: 'same-origin' });
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new ApiError(0, `${method} ${url} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

/** send, then the JSON body (or undefined for an empty one). */
export async function call<T>(method: string, url: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(method, url, opts);
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const get = <T>(url: string, signal?: AbortSignal) => call<T>('GET', url, { signal });

/**
 * Reads a streamed body chunk by chunk and hands complete lines to onLine
 * (NDJSON watch events). Returns when the stream ends; throws on a network
 * error or abort.
 */
export async function readLines(res: Response, onLine: (line: string) => void): Promise<void> {
  let rest = '';
  await readText(res, (chunk) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = rest.slice(0, nl).trim();
      rest = rest.slice(nl + 1);
      if (line) onLine(line);
    }
  });
  if (rest.trim()) onLine(rest.trim());
}

/** Reads a streamed body as text chunks (logs). */
export async function readText(res: Response, onChunk: (text: string, bytes: number) => void): Promise<void> {
  if (!res.body) {
    const text = await res.text();
    onChunk(text, text.length);
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk(decoder.decode(value, { stream: true }), value.byteLength);
  }
  const tail = decoder.decode();
  if (tail) onChunk(tail, 0);
}

/**
 * POSTs a file with XMLHttpRequest, which (unlike fetch over HTTP/1.1)
 * reports upload progress. Resolves with the parsed JSON answer.
 */
export function upload<T>(
  url: string,
  file: Blob,
  contentType: string,
  onProgress: (sent: number, total: number) => void,
): { done: Promise<T>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<T>((resolve, reject) => {
    xhr.open('POST', url);
    xhr.setRequestHeader('Content-Type', contentType);
    xhr.setRequestHeader('Accept', JSON_TYPE);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText) as T);
        } catch {
          reject(new ApiError(xhr.status, `unreadable answer: ${xhr.responseText.slice(0, 200)}`));
        }
      } else {
        reject(errorFromText(xhr.status, xhr.statusText, xhr.responseText));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, `POST ${url} failed: the connection was lost`));
    xhr.onabort = () => reject(new ApiError(0, 'upload cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/** Makes the browser save blob as a file named name. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ------------------------------------------------------------ the portal's API

export type Exposure = 'ClusterIP' | 'LoadBalancer';

export interface Settings {
  defaultNamespace?: string;
  imagePullSecret?: string;
  defaultExposure?: Exposure;
}

export interface Cluster {
  id: string;
  name: string;
  server: string;
  settings: Settings;
}

const enc = encodeURIComponent;

export const portal = {
  clusters: () => get<{ items: Cluster[] | null }>('/api/clusters').then((l) => l.items ?? []),
  join: (config: string | Blob, name: string, allowPlugins: boolean) => {
    const q = new URLSearchParams();
    if (name) q.set('name', name);
    if (allowPlugins) q.set('allowPlugins', 'true');
    const qs = q.toString();
    return call<Cluster>('POST', `/api/clusters${qs ? '?' + qs : ''}`, {
      body: config,
      contentType: 'application/yaml',
    });
  },
  remove: (id: string) => send('DELETE', `/api/clusters/${enc(id)}`),
  saveSettings: (id: string, s: Settings) => call<Settings>('PUT', `/api/clusters/${enc(id)}/settings`, { body: s }),
  exportURL: (id: string) => `/api/clusters/${enc(id)}/export`,
  openWorkspace: (id: string, ns: string, name: string) =>
    call<{ url: string }>('POST', `/api/clusters/${enc(id)}/workspaces/${enc(ns)}/${enc(name)}/open`),
};

// ------------------------------------------------------- the Kubernetes API

export const GROUP_VERSION = 'guildnet.io/v1alpha1';

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface Obj<Spec, Stat> {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Stat & { conditions?: Condition[]; observedGeneration?: number };
}

export interface WorkspaceSpec {
  image: string;
  imagePullSecrets?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; port: number }[];
  storage?: { size: string };
  exposure?: Exposure;
  suspend?: boolean;
}
export type Workspace = Obj<
  WorkspaceSpec,
  { phase?: string; readyReplicas?: number; serviceDNS?: string; proxyTarget?: string }
>;

export type DeletionPolicy = 'Retain' | 'Delete';
export type Database = Obj<{ deletionPolicy?: DeletionPolicy }, { rethinkDBName?: string; tables?: number }>;

export interface TableIndex {
  name: string;
  fields?: string[];
  multi?: boolean;
}
export type Table = Obj<
  { primaryKey?: string; indexes?: TableIndex[]; durability?: 'hard' | 'soft'; deletionPolicy?: DeletionPolicy },
  { database?: string; rethinkDBName?: string; primaryKey?: string; approximateRows?: number }
>;

export interface List<T> {
  metadata?: { continue?: string; resourceVersion?: string };
  items: T[] | null;
}

export type Row = Record<string, unknown>;
export type RowKey = string | number;

export interface RowList {
  metadata?: { continue?: string };
  items: Row[] | null;
}

export interface InsertResult {
  inserted: number;
  replaced: number;
  unchanged: number;
}

/** URL builders for one cluster's Kubernetes API, through the portal. */
export class K8s {
  constructor(readonly cluster: string) {}

  get base(): string {
    return `/clusters/${enc(this.cluster)}/k8s`;
  }

  namespaces(signal?: AbortSignal): Promise<string[]> {
    return get<List<{ metadata: ObjectMeta }>>(`${this.base}/api/v1/namespaces`, signal).then((l) =>
      (l.items ?? []).map((n) => n.metadata.name).sort(),
    );
  }

  /** …/apis/guildnet.io/v1alpha1/namespaces/NS/RESOURCE[/NAME[/SUB]] */
  url(ns: string, resource: string, name?: string, sub?: string): string {
    let u = `${this.base}/apis/${GROUP_VERSION}/namespaces/${enc(ns)}/${resource}`;
    if (name !== undefined) u += `/${enc(name)}`;
    if (sub !== undefined) u += `/${sub}`;
    return u;
  }

  list<T>(ns: string, resource: string, signal?: AbortSignal): Promise<T[]> {
    return get<List<T>>(this.url(ns, resource), signal).then((l) => l.items ?? []);
  }

  create<T>(ns: string, resource: string, obj: T): Promise<T> {
    return call<T>('POST', this.url(ns, resource), { body: obj, contentType: JSON_TYPE });
  }

  patch<T>(ns: string, resource: string, name: string, mergePatch: unknown): Promise<T> {
    return call<T>('PATCH', this.url(ns, resource, name), { body: mergePatch, contentType: MERGE_PATCH });
  }

  remove(ns: string, resource: string, name: string): Promise<unknown> {
    return call('DELETE', this.url(ns, resource, name));
  }

  /** tables/rows of table, optionally of one row (keyType=number for numeric keys). */
  rowsURL(ns: string, table: string, key?: RowKey, query: Record<string, string> = {}): string {
    let u = this.url(ns, 'tables', table, 'rows');
    const q = new URLSearchParams(query);
    if (key !== undefined) {
      u += '/' + enc(String(key));
      if (typeof key === 'number') q.set('keyType', 'number');
    }
    const qs = q.toString();
    return qs ? `${u}?${qs}` : u;
  }
}
