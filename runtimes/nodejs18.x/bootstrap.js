#!/usr/bin/env node
/**
 * fnplat's Node.js runtime: a Lambda Runtime API client running `handler(event, context[, callback])`.
 *
 * Follows AWS's aws-lambda-ric (3.x, the nodejs18.x generation): handler string and module
 * loading (CommonJS, ES modules), init error types, async and callback handlers with
 * context.succeed/fail/done and callbackWaitsForEmptyEventLoop, the context object, error bodies
 * with `trace`, and the console prefix. No npm dependencies; one keep-alive HTTP connection
 * (a plain socket: the result and the next `next` go out pipelined in one write).
 */
'use strict';

const net = require('net');
const path = require('path');
const fs = require('fs');
const util = require('util');

const API_PREFIX = '/2018-06-01';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

// ------------------------------------------------------------------------------ errors

class RuntimeError extends Error {
  constructor(type, message) {
    super(message);
    this.name = `Runtime.${type}`;
  }
}

/** Wrap a loader error the way aws-lambda-ric does: the message is the original error's text. */
function wrapLoaderError(type, original) {
  const error = new RuntimeError(type, String(original));
  if (type === 'UserCodeSyntaxError' && original && original.stack) error.stack = original.stack;
  return error;
}

function isErrorLike(value) {
  return (
    value &&
    typeof value.name === 'string' &&
    typeof value.message === 'string' &&
    typeof value.stack === 'string'
  );
}

/** The error body posted to the Runtime API: {errorType, errorMessage, trace}. */
function toErrorBody(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return { errorType: error.name, errorMessage: error.message, trace: error.stack.split('\n') };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_err) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

/** The `\t{json}` rendering of an error used in `Invoke Error` log lines. */
function formatErrorForLog(error) {
  const withProperties = (_key, value) => {
    if (value instanceof Error) {
      const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
      if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
      return out;
    }
    return value;
  };
  try {
    return '\t' + JSON.stringify(error instanceof Error ? error : new Error(error), withProperties);
  } catch (_err) {
    return '\t' + JSON.stringify(toErrorBody(error));
  }
}

// ------------------------------------------------------------------------------ console

const logState = { requestId: undefined };

/** console.* -> `<ISO ts>\t<request id>\t<LEVEL>\t<message>`, one line per call (\n -> \r). */
function patchConsole() {
  const write = (level) => (message, ...params) => {
    const line = `${new Date().toISOString()}\t${logState.requestId}\t${level}\t${util.format(message, ...params)}`;
    process.stdout.write(line.replace(/\n/g, '\r') + '\n');
  };
  const levels = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
  const wanted = levels.indexOf((process.env.AWS_LAMBDA_LOG_LEVEL || 'TRACE').toUpperCase());
  const minimum = wanted < 0 ? 0 : wanted;
  const noop = () => {};
  const at = (level) => (levels.indexOf(level) >= minimum ? write(level) : noop);
  console.trace = at('TRACE');
  console.debug = at('DEBUG');
  console.info = at('INFO');
  console.log = console.info;
  console.warn = at('WARN');
  console.error = at('ERROR');
  console.fatal = write('FATAL');
}

function logInvokeError(error) {
  console.error('Invoke Error', formatErrorForLog(error));
}

// ------------------------------------------------------------------------------ Runtime API client

/**
 * Parse one HTTP/1.1 response at the start of `buf`: { status, headers, body, keepAlive, size }
 * (size: the bytes it took), or null while it is incomplete. Header names are lower-cased.
 */
function parseResponse(buf) {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
  const statusParts = lines[0].split(' ');
  if (!statusParts[0].startsWith('HTTP/') || statusParts.length < 2) {
    throw new Error(`malformed status line from the Runtime API: ${lines[0]}`);
  }
  const status = parseInt(statusParts[1], 10);
  const headers = {};
  for (let i = 1; i < lines.length; i += 1) {
    const colon = lines[i].indexOf(':');
    if (colon > 0) headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
  }
  const keepAlive = (headers.connection || '').toLowerCase() !== 'close' && statusParts[0] !== 'HTTP/1.0';
  let offset = headEnd + 4;
  if ((headers['transfer-encoding'] || '').toLowerCase().includes('chunked')) {
    const chunks = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', offset);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.toString('latin1', offset, lineEnd).split(';')[0], 16);
      if (Number.isNaN(size)) throw new Error('malformed chunk size from the Runtime API');
      offset = lineEnd + 2;
      if (size === 0) {
        const trailersEnd = buf.indexOf('\r\n', offset);
        if (trailersEnd < 0) return null;
        if (trailersEnd !== offset) {
          const end = buf.indexOf('\r\n\r\n', offset);
          if (end < 0) return null;
          offset = end + 4;
        } else {
          offset = trailersEnd + 2;
        }
        return { status, headers, body: Buffer.concat(chunks), keepAlive, size: offset };
      }
      if (buf.length < offset + size + 2) return null;
      chunks.push(buf.subarray(offset, offset + size));
      offset += size + 2;
    }
  }
  const length = headers['content-length'] !== undefined ? parseInt(headers['content-length'], 10) : 0;
  if (buf.length < offset + length) return null;
  return { status, headers, body: buf.subarray(offset, offset + length), keepAlive, size: offset + length };
}

/**
 * One keep-alive HTTP/1.1 connection to the Runtime API over a plain socket. Requests may be
 * pipelined: a result and the next `next` go out in one write, and fnplat's Runtime API answers
 * both in one packet. The socket is unref'd while nothing is in flight, so it never keeps the
 * event loop alive (callbackWaitsForEmptyEventLoop depends on the loop draining).
 */
class RuntimeApiClient {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    if (colon <= 0) throw new Error(`AWS_LAMBDA_RUNTIME_API must be host:port, got ${address}`);
    this.address = address;
    this.hostname = address.slice(0, colon).replace(/^\[|\]$/g, '');
    this.port = parseInt(address.slice(colon + 1), 10);
    this.socket = null;
    this.answered = 0; // responses read on the current socket
    this.buffer = Buffer.alloc(0);
    this.inFlight = []; // { payload, resolve, reject, retried, reused } in the order sent
  }

  encode(method, resource, body, headers) {
    const lines = [`${method} ${API_PREFIX}${resource} HTTP/1.1`, `Host: ${this.address}`, 'User-Agent: fnplat-nodejs/18'];
    const bodyBuffer = body === undefined ? null : Buffer.from(body);
    if (bodyBuffer) lines.push(`Content-Length: ${bodyBuffer.length}`);
    for (const [name, value] of Object.entries(headers || {})) lines.push(`${name}: ${value}`);
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    return bodyBuffer ? Buffer.concat([head, bodyBuffer]) : head;
  }

  /** Send the encoded requests in one write; one promise of a response per request, in order. */
  send(payloads) {
    const entries = payloads.map((payload) => ({ payload, retried: false }));
    const promises = entries.map((entry) => new Promise((resolve, reject) => Object.assign(entry, { resolve, reject })));
    this.transmit(entries);
    return promises;
  }

  transmit(entries) {
    if (!this.socket) this.connect();
    const reused = this.answered > 0;
    for (const entry of entries) entry.reused = reused;
    this.inFlight.push(...entries);
    this.socket.ref();
    this.socket.write(entries.length === 1 ? entries[0].payload : Buffer.concat(entries.map((e) => e.payload)));
  }

  connect() {
    const socket = net.connect({ host: this.hostname, port: this.port });
    socket.setNoDelay(true);
    this.socket = socket;
    this.answered = 0;
    this.buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => this.onData(socket, chunk));
    socket.on('error', (err) => this.onBroken(socket, err));
    socket.on('close', () => this.onBroken(socket, Object.assign(new Error('the Runtime API closed the connection'), { code: 'ECONNRESET' })));
  }

  onData(socket, chunk) {
    if (socket !== this.socket) return;
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      let parsed;
      try {
        parsed = parseResponse(this.buffer);
      } catch (err) {
        this.onBroken(socket, err);
        return;
      }
      if (!parsed) return;
      this.buffer = this.buffer.subarray(parsed.size);
      this.answered += 1;
      const entry = this.inFlight.shift();
      if (!parsed.keepAlive) {
        // The server answered this one and hangs up: send the rest again on a new connection.
        const rest = this.inFlight;
        this.inFlight = [];
        this.socket = null;
        socket.destroy();
        if (rest.length) this.transmit(rest);
      } else if (!this.inFlight.length) {
        socket.unref();
      }
      if (entry) entry.resolve({ status: parsed.status, headers: parsed.headers, body: parsed.body });
      if (socket !== this.socket) return;
    }
  }

  onBroken(socket, err) {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.destroy();
    const pending = this.inFlight;
    this.inFlight = [];
    // A reused keep-alive socket may have been closed by the server just before these requests
    // went out; resending once on a fresh socket is safe then (they never arrived).
    const retry = pending.filter((e) => e.reused && !e.retried && (err.code === 'ECONNRESET' || err.code === 'EPIPE'));
    for (const entry of pending) if (!retry.includes(entry)) entry.reject(err);
    for (const entry of retry) entry.retried = true;
    if (retry.length) this.transmit(retry);
  }

  request(method, resource, body, headers) {
    return this.send([this.encode(method, resource, body, headers)])[0];
  }

  async nextInvocation() {
    return checkNext(await this.request('GET', '/runtime/invocation/next'));
  }

  async post(resource, body, headers) {
    checkPost(resource, await this.request('POST', resource, body, postHeaders(headers)));
  }

  /** POST a result and ask for the next event in one write: { posted, next } promises. */
  postThenNext(resource, body, headers) {
    const [postResponse, nextResponse] = this.send([
      this.encode('POST', resource, body, postHeaders(headers)),
      this.encode('GET', '/runtime/invocation/next'),
    ]);
    return { posted: postResponse.then((res) => checkPost(resource, res)), next: nextResponse.then(checkNext) };
  }

  respondThenNext(id, bodyString) {
    return this.postThenNext(`/runtime/invocation/${encodeURIComponent(id)}/response`, bodyString);
  }

  errorThenNext(id, error) {
    return this.postThenNext(`/runtime/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(toErrorBody(error)));
  }

  postInvocationError(id, error) {
    return this.post(`/runtime/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(toErrorBody(error)));
  }

  postInitError(error) {
    const body = toErrorBody(error);
    return this.post('/runtime/init/error', JSON.stringify(body), { [ERROR_TYPE_HEADER]: body.errorType });
  }
}

function postHeaders(headers) {
  return Object.assign({ 'Content-Type': 'application/json' }, headers);
}

function checkNext(res) {
  if (res.status !== 200) throw new Error(`GET next answered ${res.status}: ${res.body.toString().slice(0, 500)}`);
  return res;
}

function checkPost(resource, res) {
  if (res.status < 200 || res.status > 299) {
    throw new Error(`POST ${resource} answered ${res.status}: ${res.body.toString().slice(0, 500)}`);
  }
}

// ------------------------------------------------------------------------------ handler loading

/** './dir/sub/module.nested.fn' -> ['./dir/sub/', 'module', 'nested.fn']. */
function splitHandler(fullHandler) {
  if (fullHandler.includes('..')) {
    throw new RuntimeError(
      'MalformedHandlerName',
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const base = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(base));
  const match = base.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new RuntimeError('MalformedHandlerName', 'Bad handler');
  return [moduleRoot, match[1], match[2]];
}

function packageTypeIsModule(folder) {
  // Nearest package.json decides; a node_modules folder or the filesystem root ends the search.
  for (let dir = folder; ; dir = path.resolve(dir, '..')) {
    if (dir.endsWith('/node_modules')) return false;
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8')).type === 'module';
      } catch (_err) {
        return false;
      }
    }
    if (dir === '/') return false;
  }
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? import(file) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = requireIfExists(base);
  if (extensionless) return extensionless;
  const isModule = packageTypeIsModule(path.dirname(base));
  if (!isModule) {
    const cjs = requireIfExists(base + '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (isModule && (await importIfExists(base + '.js'))) ||
    (await importIfExists(base + '.mjs')) ||
    requireIfExists(base + '.cjs');
  if (loaded) return loaded;
  // Fall back to Node's own resolution from the task root (e.g. a package in node_modules).
  return require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  const [moduleRoot, moduleName, handlerPath] = splitHandler(fullHandler);
  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) throw wrapLoaderError('UserCodeSyntaxError', err);
    if (err && err.code === 'MODULE_NOT_FOUND') throw wrapLoaderError('ImportModuleError', err);
    throw err;
  }
  const handler = handlerPath.split('.').reduce((obj, key) => obj && obj[key], app);
  if (!handler) throw new RuntimeError('HandlerNotFound', `${fullHandler} is undefined or not exported`);
  if (typeof handler !== 'function') throw new RuntimeError('HandlerNotFound', `${fullHandler} is not a function`);
  return handler;
}

// ------------------------------------------------------------------------------ invocations

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function serialize(result) {
  try {
    return JSON.stringify(result === undefined ? null : result);
  } catch (_err) {
    throw new RuntimeError('JSONStringifyError', 'Unable to stringify response body');
  }
}

/** Runs the invoke loop; one invocation at a time. */
class Runtime {
  constructor(client, handler) {
    this.client = client;
    this.handler = handler;
    this.isAsync = handler.constructor && handler.constructor.name === 'AsyncFunction';
    this.current = undefined; // request id of the invocation in flight
    this.onLoopDrained = () => {}; // what 'beforeExit' does for the invocation in flight
    process.on('beforeExit', () => this.onLoopDrained());
  }

  /** Run the next invocation once `next` (a pending `next` response, or none yet) answers. */
  scheduleNext(next) {
    setImmediate(() => this.invokeOnce(next).catch((err) => fatal(err)));
  }

  async invokeOnce(next) {
    const res = await (next || this.client.nextInvocation());
    const id = res.headers['lambda-runtime-aws-request-id'];
    if (!id) throw new Error('invocation id is missing or invalid');
    this.current = id;
    logState.requestId = id;
    const trace = res.headers['lambda-runtime-trace-id'];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    else delete process.env._X_AMZN_TRACE_ID;

    const [callback, context, markCompleted] = this.completionFor(id);
    this.onLoopDrained = () => {
      // The loop drained and the handler never completed: an async handler's promise never
      // settled (an error, as on AWS); a callback handler that never called back gets null.
      markCompleted();
      this.onLoopDrained = () => {};
      if (this.isAsync) {
        const error = new RuntimeError(
          'NodeJsExit',
          'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled.',
        );
        logInvokeError(error);
        this.finish(this.client.errorThenNext(id, error));
      } else {
        this.finish(this.client.respondThenNext(id, 'null'));
      }
    };
    try {
      const deadline = Number(res.headers['lambda-runtime-deadline-ms']);
      Object.assign(context, {
        functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        clientContext: parseJsonHeader(res.headers['lambda-runtime-client-context'], 'ClientContext'),
        identity: parseJsonHeader(res.headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        invokedFunctionArn: res.headers['lambda-runtime-invoked-function-arn'],
        awsRequestId: id,
        tenantId: res.headers['lambda-runtime-aws-tenant-id'],
        getRemainingTimeInMillis: () => deadline - Date.now(),
      });
      const result = this.handler(JSON.parse(res.body.toString('utf8')), context, callback);
      if (result && typeof result.then === 'function') {
        result.then(context.succeed, context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  /** callback / succeed / fail / done for one invocation; only the first completion counts. */
  completionFor(id) {
    let finished = false; // one of callback/succeed/fail/done was called
    let completed = false; // a response or error was (or is being) posted
    let waitForEmptyEventLoop = true;
    const postError = (err) => {
      if (completed) return;
      completed = true;
      logInvokeError(err);
      this.finish(this.client.errorThenNext(id, err));
    };
    const complete = (result) => {
      if (completed) return;
      let body;
      try {
        body = serialize(result);
      } catch (err) {
        postError(err);
        return;
      }
      completed = true;
      this.finish(this.client.respondThenNext(id, body));
    };
    const done = (err, result) => {
      this.onLoopDrained = () => {};
      if (err !== undefined && err !== null) postError(err);
      else complete(result);
    };
    const callback = (err, result) => {
      this.onLoopDrained = () => {};
      if (err !== undefined && err !== null) postError(err);
      else if (!waitForEmptyEventLoop) complete(result);
      else this.onLoopDrained = () => {
        this.onLoopDrained = () => {};
        setImmediate(() => complete(result));
      };
    };
    const once = (fn) => (...args) => {
      if (finished) return;
      finished = true;
      fn(...args);
    };
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: once((result) => done(null, result)),
      fail: once((err) => done(err === undefined || err === null ? 'handled' : err, null)),
      done: once(done),
    };
    return [once(callback), context, () => { completed = true; }];
  }

  /** After a POST: a refused one is fatal (as AWS's client); otherwise run the next event. */
  finish({ posted, next }) {
    next.catch(() => {}); // its failure is reported by invokeOnce, or moot after a refused POST
    posted.then(
      () => {
        this.current = undefined;
        this.scheduleNext(next);
      },
      (err) => fatal(err),
    );
  }
}

function fatal(err) {
  process.stderr.write(`bootstrap: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

async function main() {
  patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write('bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  const client = new RuntimeApiClient(address);
  const appRoot = process.env.LAMBDA_TASK_ROOT || '/var/task';
  // A handler argument wins over _HANDLER, like `CMD ["index.handler"]` in AWS's base images.
  const handlerName = process.argv[2] || process.env._HANDLER || '';
  let runtime;

  // Uncaught errors: during init they are the init error; during an invocation they fail it and
  // end the process (exit codes as aws-lambda-ric: 129 exception, 128 rejection).
  const onUncaught = (exitCode) => (error) => {
    console.error(exitCode === 129 ? 'Uncaught Exception' : 'Unhandled Promise Rejection', formatErrorForLog(error));
    let posted;
    if (!runtime) posted = client.postInitError(error);
    else if (runtime.current) posted = client.postInvocationError(runtime.current, error);
    else posted = Promise.resolve();
    posted.then(() => process.exit(exitCode), () => process.exit(exitCode));
  };
  process.on('uncaughtException', onUncaught(129));
  process.on('unhandledRejection', (reason) => {
    const error = new RuntimeError('UnhandledPromiseRejection', String(reason));
    error.reason = reason;
    onUncaught(128)(error);
  });

  let handler;
  try {
    if (appRoot && fs.existsSync(appRoot)) process.chdir(appRoot);
    handler = await loadHandler(appRoot, handlerName);
  } catch (err) {
    console.error('Init Error', formatErrorForLog(err));
    try {
      await client.postInitError(err);
    } catch (postErr) {
      fatal(postErr);
    }
    process.exit(1);
  }
  runtime = new Runtime(client, handler);
  runtime.scheduleNext();
}

module.exports = { splitHandler, toErrorBody, serialize, packageTypeIsModule, parseResponse, RuntimeApiClient };

if (require.main === module) {
  main().catch(fatal);
}
