import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { parseRetryAfter } from './format';

/**
 * A request to our server extension that did not succeed. `status` is null when no answer
 * came back at all (the Jupyter server is unreachable).
 */
export class RequestFailure extends Error {
  constructor(
    readonly status: number | null,
    readonly body: unknown,
    readonly retryAfter: number | null
  ) {
    super(status === null ? 'network error' : `HTTP ${status}`);
  }
}

/**
 * Calls `{baseUrl}otter-service/{endPoint}` on this page's Jupyter server.
 * ServerConnection adds the server's token and XSRF header.
 */
export async function requestAPI<T>(
  settings: ServerConnection.ISettings,
  endPoint: string,
  init: RequestInit = {}
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'otter-service', endPoint);
  const headers = new Headers(init.headers ?? {});
  headers.set('Accept', 'application/json');
  if (init.body !== undefined) {
    headers.set('Content-Type', 'application/json');
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { ...init, headers }, settings);
  } catch (error) {
    throw new RequestFailure(null, null, null);
  }
  let data: unknown = null;
  try {
    const text = await response.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new RequestFailure(
      response.status,
      data,
      parseRetryAfter(response.headers.get('Retry-After'))
    );
  }
  return data as T;
}
