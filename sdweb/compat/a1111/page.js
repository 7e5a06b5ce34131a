// A1111's page helpers for A1111 extensions' javascript (sdweb compatibility layer, written for sdweb).
(() => {
  const handlers = {loaded: [], update: [], afterUpdate: [], options: [], tab: []};
  window.opts = Object.assign(window.opts || {}, __OPTIONS__);
  // A1111's hints: label or button text -> tooltip; extensions merge theirs in (`titles = {...titles, ...}`)
  window.titles = window.titles || {};
  window.gradioApp = () => {
    const app = document.querySelector("gradio-app");
    return app && app.shadowRoot ? app.shadowRoot : document;
  };
  // Gradio 3 put a textbox's <textarea> straight under its <label>; Gradio 6 wraps it in a div. Extensions select
  // prompts with "#txt2img_prompt > label > textarea", which cannot match Gradio 6's page, so that step is read
  // as "label textarea". A1111's element ids that sdweb's page names differently (A1111_IDS) are read as sdweb's
  // when the page has no element with A1111's id. Selectors that can match are left as they are.
  const aliases = __A1111_IDS__;
  const aliasPattern = new RegExp(`#(${Object.keys(aliases).join("|")})(?![\\w-])`, "g");
  const gradio3Selector = (selector) => {
    if (typeof selector !== "string") return selector;
    let read = selector.includes("label > textarea") || selector.includes("label>textarea")
      ? selector.replace(/label\s*>\s*textarea/g, "label textarea") : selector;
    if (read.includes("#setting_")) {
      read = read.replace(aliasPattern, (whole, id) => nativeById.call(document, id) ? whole : `#${aliases[id]}`);
    }
    return read;
  };
  const nativeById = Document.prototype.getElementById;
  Document.prototype.getElementById = function (id) {
    return nativeById.call(this, id) || (aliases[id] ? nativeById.call(this, aliases[id]) : null);
  };
  for (const proto of [Document.prototype, Element.prototype, DocumentFragment.prototype]) {
    for (const name of ["querySelector", "querySelectorAll"]) {
      const original = proto[name];
      proto[name] = function (selector) { return original.call(this, gradio3Selector(selector)); };
    }
  }
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
  const showTitles = () => {
    for (const element of document.querySelectorAll("button, label > span, [role=tab], option")) {
      const hint = window.titles[element.textContent.trim()] || window.titles[element.value];
      if (hint && !element.title) element.title = hint;
    }
  };
  // Gradio 3 built every tab's elements at page load, and A1111 extensions look theirs up in onUiLoaded; Gradio 6
  // builds a tab when it is first opened. So the tabs named in RENDER_TABS (img2img and the A1111 extensions'
  // own) are opened once, with the tabs inside them, before onUiLoaded callbacks run; the first tab is selected
  // again afterwards.
  const renderTabs = __RENDER_TABS__;
  const settle = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50)));
  const openTab = async (button) => {
    button.click();
    for (let tries = 0; tries < 40 && !document.getElementById(button.getAttribute("aria-controls")); tries++) {
      await settle();
    }
    await settle();
  };
  const openInnerTabs = async (panel) => {
    const buttons = panel ? [...panel.querySelectorAll("button[role=tab]")] : [];
    for (const button of buttons) await openTab(button);
    if (buttons.length) await openTab(buttons[0]);
  };
  const openTabsOnce = async () => {
    const first = document.querySelector("#tabs button[role=tab][aria-selected=true]");
    for (const id of renderTabs) {
      const button = document.querySelector(`#tabs button[role=tab][data-tab-id="${CSS.escape(id)}"]`);
      if (!button) continue;
      await openTab(button);
      await openInnerTabs(document.getElementById(button.getAttribute("aria-controls")));
    }
    if (first) await openTab(first);
  };
  let loaded = false, ready = false, pending = null, currentTab = null;
  const updated = (mutations) => {
    run(handlers.update, mutations);
    clearTimeout(pending);
    pending = setTimeout(() => { showTitles(); run(handlers.afterUpdate); }, 200);
    const tab = window.get_uiCurrentTab();
    if (tab !== currentTab) { currentTab = tab; window.uiCurrentTab = tab; run(handlers.tab); }
  };
  const observe = () => {
    new MutationObserver((mutations) => {
      if (!loaded && document.querySelector("#txt2img_prompt textarea")) {
        loaded = true;
        // A1111 runs onUiUpdate callbacks in the same round as onUiLoaded ones; extensions that set up from
        // onUiUpdate (tagcomplete) would otherwise wait for the next change of the page, after the user typed.
        openTabsOnce().catch((error) => console.error("A1111 page helpers: opening tabs failed", error))
          .finally(() => { ready = true; run(handlers.loaded); updated([]); });
      }
      if (ready) updated(mutations);
    }).observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) observe(); else document.addEventListener("DOMContentLoaded", observe);
})();
