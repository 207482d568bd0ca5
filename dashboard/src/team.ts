/**
 * Team pages (users, account): progressive enhancement only, every form works without it.
 * A button with `data-copy="#id"` copies that field's value (a one-time link) to the clipboard;
 * a form with `data-confirm="…"` asks before it is sent (deactivating a user).
 */

function copyField(button: HTMLButtonElement): void {
  const field = document.querySelector<HTMLInputElement>(button.dataset.copy || '');
  if (!field) return;
  const done = (ok: boolean): void => {
    const label = button.dataset.label || button.textContent || 'Copy';
    button.dataset.label = label;
    button.textContent = ok ? 'Copied' : 'Select and copy it';
    window.setTimeout(() => { button.textContent = label; }, 2500);
  };
  field.focus();
  field.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(() => done(true), () => done(document.execCommand('copy')));
  } else {
    done(document.execCommand('copy'));
  }
}

document.addEventListener('click', (event) => {
  const target = event.target as Element | null;
  const button = target && target.closest<HTMLButtonElement>('button[data-copy]');
  if (button) {
    event.preventDefault();
    copyField(button);
  }
});

document.addEventListener('submit', (event) => {
  const form = event.target as HTMLFormElement | null;
  const question = form && form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

for (const field of Array.from(document.querySelectorAll<HTMLInputElement>('input[readonly].token-value'))) {
  field.addEventListener('focus', () => field.select());
}
