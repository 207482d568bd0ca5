/**
 * Cohorts page: the conditions editor counts the people its conditions pick while they are edited.
 *
 * The editor works without this script (a "Preview size" button posts the form and the server answers with the
 * page and the size); with it, a change posts the same form in the background (action=preview) and shows the
 * size the server's answer holds, "Counting…" while it runs. Which fields each row shows is CSS (:has), not here.
 */
import './analytics.css';
import './cohorts.css';

/** What tests (and curious developers) can read from the page. */
export interface HmCohorts {
  previews: number;
  failures: number;
}

const state: HmCohorts = { previews: 0, failures: 0 };
(window as unknown as { hmCohorts: HmCohorts }).hmCohorts = state;
let latest = 0;
let timer: number | undefined;

async function preview(form: HTMLFormElement, out: HTMLElement): Promise<void> {
  const ticket = ++latest;
  const body = new URLSearchParams();
  new FormData(form).forEach((value, key) => {
    if (typeof value === 'string') body.append(key, value);
  });
  body.set('action', 'preview');
  out.classList.add('is-loading');
  form.setAttribute('aria-busy', 'true');
  try {
    // form.action would name the "action" buttons, not the attribute.
    const answer = await fetch(form.getAttribute('action') || window.location.pathname, {
      method: 'POST',
      body,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    const page = new DOMParser().parseFromString(await answer.text(), 'text/html');
    if (ticket !== latest) return; // a newer edit is being counted
    const size = page.getElementById('hm-co-size');
    const problem = page.getElementById('hm-co-error');
    out.textContent = '';
    if (answer.ok && size) {
      out.append(...Array.from(size.childNodes).map((n) => document.importNode(n, true)));
    } else {
      out.textContent = problem ? (problem.textContent || '').trim() : 'Could not count: check the conditions.';
      state.failures += 1;
    }
    state.previews += 1;
  } catch {
    if (ticket === latest) {
      out.textContent = 'Could not count (offline?).';
      state.failures += 1;
    }
  } finally {
    if (ticket === latest) {
      out.classList.remove('is-loading');
      form.removeAttribute('aria-busy');
    }
  }
}

function setUp(): void {
  const form = document.getElementById('hm-co-builder') as HTMLFormElement | null;
  const out = document.getElementById('hm-co-size');
  if (!form || !out) return;
  const later = (): void => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void preview(form, out), 400);
  };
  form.addEventListener('change', later);
  form.addEventListener('input', (event) => {
    if ((event.target as HTMLElement).getAttribute('name') !== 'name') later();
  });
  form.addEventListener('submit', (event) => {
    const button = (event as SubmitEvent).submitter as HTMLButtonElement | null;
    if (button && button.value === 'preview') {
      event.preventDefault();
      window.clearTimeout(timer);
      void preview(form, out);
    } else {
      form.setAttribute('aria-busy', 'true');
    }
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', setUp);
else setUp();
