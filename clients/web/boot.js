// The page's first script, classic and tiny, before the client's modules. A module that does
// not arrive (a connection reset on the way) fails the whole module graph: app.js never runs
// and the page stays blank, the login form hidden. Once on CI, two of app.js's modules never
// reached the server and the page sat blank for 30 s. The page reloads itself once; if the
// modules fail again, it says so and offers a reload.
(() => {
  const RELOADED = 'yunshi.reloadedAfterLoadFailure';
  let failed = false;
  window.addEventListener('error', (event) => {
    // A script's failed fetch fires at the element and does not bubble: caught on the way down.
    if (!(event.target instanceof HTMLScriptElement) || failed) return;
    failed = true;
    console.warn(`yunshi: a script of the page failed to load (${event.target.src})`);
    if (!sessionStorage.getItem(RELOADED)) {
      sessionStorage.setItem(RELOADED, '1');
      location.reload();
      return;
    }
    const banner = document.getElementById('banner');
    const button = document.getElementById('banner-action');
    document.getElementById('banner-text').textContent = 'Part of the page failed to load';
    button.textContent = 'Reload';
    button.onclick = () => location.reload();
    banner.hidden = false;
  }, true);
  window.addEventListener('load', () => {
    if (!failed) sessionStorage.removeItem(RELOADED);
  });
})();
