// The first script of the web client's page and of the command console's: classic and tiny,
// ahead of their modules. A module that does not arrive (a connection reset on the way) fails
// the whole module graph: app.js never runs and the page stays blank, the login form hidden.
// Once on CI, two of app.js's modules never reached the server and the page sat blank for
// 30 s. The page reloads itself once; if the modules fail again, it says so and offers a
// reload.
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
    const banner = document.getElementById('banner') ?? makeBanner();
    const button = banner.querySelector('button');
    banner.querySelector('span').textContent = 'Part of the page failed to load';
    button.textContent = 'Reload';
    button.onclick = () => location.reload();
    banner.hidden = false;
  }, true);
  // The command console has no banner of its own: one like the web client's (style.css).
  function makeBanner() {
    const banner = document.createElement('div');
    banner.className = 'banner';
    banner.id = 'banner';
    banner.setAttribute('role', 'alert');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button';
    banner.append(document.createElement('span'), button);
    document.body.prepend(banner);
    return banner;
  }
  window.addEventListener('load', () => {
    if (!failed) sessionStorage.removeItem(RELOADED);
  });
})();
