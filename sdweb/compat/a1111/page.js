// A1111's page helpers for A1111 extensions' javascript (sdweb compatibility layer, written for sdweb).
(() => {
  const handlers = {loaded: [], update: [], afterUpdate: [], options: [], tab: []};
  window.opts = Object.assign(window.opts || {}, __OPTIONS__);
  window.gradioApp = () => {
    const app = document.querySelector("gradio-app");
    return app && app.shadowRoot ? app.shadowRoot : document;
  };
  window.onUiLoaded = (callback) => handlers.loaded.push(callback);
  window.onUiUpdate = (callback) => handlers.update.push(callback);
  window.onAfterUiUpdate = (callback) => handlers.afterUpdate.push(callback);
  window.onOptionsChanged = (callback) => handlers.options.push(callback);
  window.onUiTabChange = (callback) => handlers.tab.push(callback);
  window.get_uiCurrentTab = () => document.querySelector("#tabs button[role=tab][aria-selected=true]");
  window.get_uiCurrentTabContent = () => document.querySelector("#tabs [role=tabpanel]:not([hidden])");
  const run = (list, argument) => {
    for (const callback of list) {
      try { callback(argument); } catch (error) { console.error("A1111 extension callback failed", error); }
    }
  };
  let loaded = false, pending = null, currentTab = null;
  const observe = () => {
    new MutationObserver((mutations) => {
      if (!loaded && document.querySelector("#txt2img_prompt textarea")) { loaded = true; run(handlers.loaded); }
      if (!loaded) return;
      run(handlers.update, mutations);
      clearTimeout(pending);
      pending = setTimeout(() => run(handlers.afterUpdate), 200);
      const tab = window.get_uiCurrentTab();
      if (tab !== currentTab) { currentTab = tab; window.uiCurrentTab = tab; run(handlers.tab); }
    }).observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) observe(); else document.addEventListener("DOMContentLoaded", observe);
})();
