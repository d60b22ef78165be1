// Small building blocks shared by the views: error boxes that show what the
// API said, a spinner with text, buttons that run an async action, a
// two-step delete, and polling.

import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, Condition, asApiError, isAbort } from './api';

/** Shows an API error as the API said it: "HTTP 422 Invalid: message", then its causes. */
export function ErrorBox({ error, testid = 'error' }: { error?: ApiError | null; testid?: string }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" data-testid={testid} data-code={String(error.code)}>
      <div>{error.toString()}</div>
      {error.causes.length > 0 && (
        <ul>
          {error.causes.map((c, i) => (
            <li key={i}>{c}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Spinner({ text, testid = 'busy' }: { text: string; testid?: string }) {
  return (
    <span class="busy" data-testid={testid} role="status">
      <span class="spinner" aria-hidden="true" />
      {text}
    </span>
  );
}

/**
 * A button that runs an async action, shows a spinner with busyText while it
 * runs, and shows the action's error (if any) next to itself.
 */
export function ActionButton(props: {
  run: () => Promise<unknown>;
  label: string;
  busyText?: string;
  testid: string;
  class?: string;
  disabled?: boolean;
  type?: 'button' | 'submit';
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const mounted = useMounted();
  const click = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.run();
    } catch (err) {
      if (mounted.current) setError(asApiError(err));
    } finally {
      if (mounted.current) setBusy(false);
    }
  };
  return (
    <span class="action">
      <button
        type={props.type ?? 'button'}
        class={props.class}
        data-testid={props.testid}
        disabled={busy || props.disabled}
        onClick={click}
      >
        {props.label}
      </button>
      {busy && props.busyText && <Spinner text={props.busyText} />}
      <ErrorBox error={error} />
    </span>
  );
}

/** Delete in two clicks: `testid`, then `testid-confirm` (no browser dialogs). */
export function DeleteButton(props: {
  run: () => Promise<unknown>;
  testid: string;
  what: string;
  verb?: string;
}) {
  const { run, testid, what, verb = 'Delete' } = props;
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" class="danger" data-testid={testid} onClick={() => setAsking(true)}>
        {verb}
      </button>
    );
  }
  return (
    <span class="confirm">
      {verb} {what}?{' '}
      <ActionButton
        class="danger"
        testid={`${testid}-confirm`}
        label={`Yes, ${verb.toLowerCase()}`}
        busyText={`${verb.replace(/e$/, '')}ing…`}
        run={run}
      />
      <button type="button" data-testid={`${testid}-cancel`} onClick={() => setAsking(false)}>
        No
      </button>
    </span>
  );
}

export function useMounted() {
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  return mounted;
}

export interface Polled<T> {
  data?: T;
  error?: ApiError;
  loading: boolean;
  /** Loads again now (after a change). */
  reload: () => void;
}

/**
 * Loads with fn now and then every intervalMs (0: once), again whenever deps
 * change. The last good data stays shown while a later load fails.
 */
export function usePoll<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[], intervalMs = 0): Polled<T> {
  // Results carry the deps they were loaded for: data of other deps (another
  // namespace, say) is never shown under new ones.
  const key = JSON.stringify(deps);
  const [state, setState] = useState<{ key: string; data?: T; error?: ApiError; loading: boolean }>({
    key,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      setState((s) => (s.key === key ? { ...s, loading: true } : { key, loading: true }));
      try {
        const data = await fn(ctl.signal);
        if (!ctl.signal.aborted) setState({ key, data, loading: false });
      } catch (e) {
        if (ctl.signal.aborted || isAbort(e)) return;
        setState((s) => ({ key, data: s.key === key ? s.data : undefined, error: asApiError(e), loading: false }));
      }
      if (intervalMs > 0 && !ctl.signal.aborted) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [key, tick]);
  if (state.key !== key) return { loading: true, reload };
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** The Ready condition of an object's status. */
export function ready(conditions?: Condition[]): Condition | undefined {
  return conditions?.find((c) => c.type === 'Ready');
}

/** "True", "False: Reason — message" etc., for a status cell. */
export function ReadyCell({ conditions, testid }: { conditions?: Condition[]; testid: string }) {
  const c = ready(conditions);
  if (!c) {
    return (
      <td data-testid={testid} data-status="" class="muted">
        no status yet
      </td>
    );
  }
  const cls = c.status === 'True' ? 'ok' : c.status === 'False' ? 'bad' : 'muted';
  const word = c.status === 'True' ? 'Ready' : 'Not ready';
  return (
    <td data-testid={testid} data-status={c.status} data-reason={c.reason ?? ''} title={c.message}>
      <span class={cls}>{word}</span>
      {c.reason && c.reason !== word && <span class="reason"> {c.reason}</span>}
      {c.message && <div class="message">{c.message}</div>}
    </td>
  );
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span class="label">{props.label}</span>
      {props.children}
      {props.hint && <span class="hint">{props.hint}</span>}
    </label>
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
