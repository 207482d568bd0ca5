/**
 * Hitmetrix browser tracker entry: reads the script tag, honours DNT and opt-out, starts
 * autocapture and rrweb recording, and exposes `window.hitmetrix` (replaying a pre-load queue).
 */
import { install, pageview } from './autocapture';
import { Config, dntRequested, readConfig } from './config';
import { emit, onRecording } from './events';
import { loadFeatures } from './features';
import { configure } from './privacy';
import { discard, flush } from './queue';
import * as recorder from './recorder';
import * as session from './session';
import { startSignals } from './signals';
import { clear, setEndpoint } from './transport';
import { clip, load, safe, save, state } from './util';

const OPT_OUT_KEY = 'hm_optout';

type Command = [string, ...unknown[]];

export interface HitmetrixApi {
  track(name: string, props?: object): void;
  identify(userId: string, traits?: object): void;
  optOut(): void;
  optIn(): void;
  flush(): void;
  sessionId(): string | null | undefined;
  push(command: Command): void;
  readonly _errors: number;
}

const host = window as unknown as { hitmetrix?: HitmetrixApi | Command[] };

function start(config: Config): void {
  if (state.on) return;
  state.on = true;
  session.start(config.cookieless);
  pageview('load');
  startSignals(); // automation signals, once per page (signals.ts)
  if (config.record) recorder.startRecording(config.maskText, safe(onRecording));
  loadFeatures(config.endpoint, config.record); // optional chunks the project turned on (features.ts)
}

function init(): void {
  const preloaded = host.hitmetrix;
  if (preloaded && !Array.isArray(preloaded)) return; // loaded twice: the first copy stays in charge
  const config = readConfig();
  const blocked = config.respectDnt && dntRequested();
  setEndpoint(config.endpoint);
  configure(config.maskText, config.allowQuery);

  const api: HitmetrixApi = {
    track: safe((name: string, props?: object) => emit('custom', { name: clip(name, 200) }, props)),
    identify: safe((userId: string, traits?: object) => {
      if (!state.on) return;
      session.setUser(clip(userId, 256));
      emit('identify', {}, traits);
    }),
    optOut: safe(() => {
      save('localStorage', OPT_OUT_KEY, '1');
      state.on = false;
      discard();
      clear();
      session.forget();
    }),
    optIn: safe(() => {
      save('localStorage', OPT_OUT_KEY, null);
      if (!blocked) start(config);
    }),
    flush: safe(() => flush()),
    sessionId: safe(() => (state.on ? session.ids.sid : null)),
    push: safe((command: Command) => {
      const method = api[command[0] as keyof HitmetrixApi];
      if (typeof method === 'function') (method as (...args: unknown[]) => void)(...command.slice(1));
    }),
    get _errors() {
      return state.errors;
    },
  };
  host.hitmetrix = api;

  install(config.maskText);
  if (!blocked && load('localStorage', OPT_OUT_KEY) !== '1') start(config);
  if (Array.isArray(preloaded)) {
    preloaded.forEach(api.push);
    preloaded.push = api.push as (c: Command) => number; // a snippet that kept the array keeps working
  }
}

safe(init)();
