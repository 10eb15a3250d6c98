// Backup Portal shell: blade navigation, panels, menu filter, confirmations.
// Blades: a link marked data-blade opens its page as a blade to the right of the blade that
// holds the link (closing any further right); data-blade="replace" swaps the blade itself.
// Every blade has its own URL (pushState), so reload and shared links show the same page.
(function () {
  "use strict";
  const blades = () => document.getElementById("blades");

  // A page rendered as a blade fragment: {response, doc, blade}.
  async function fetchBlade(url) {
    const response = await fetch(url, { headers: { "HX-Request": "true", "HX-Target": "blades" } });
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    return { response, doc, blade: doc.querySelector(".blade") };
  }

  async function openBlade(link, mode) {
    const source = link.closest(".blade");
    const { response, doc, blade } = await fetchBlade(link.href);
    if (!response.ok || response.redirected) { window.location = response.url || link.href; return; }
    if (!blade) { window.location = link.href; return; }
    for (const oob of doc.querySelectorAll("[hx-swap-oob]")) {
      const target = document.getElementById(oob.id);
      if (target) { oob.removeAttribute("hx-swap-oob"); target.replaceWith(oob); }
    }
    const title = doc.querySelector("title");
    if (title) document.title = title.textContent;
    if (source) {
      while (source.nextElementSibling) source.nextElementSibling.remove();
      if (mode === "replace") source.replaceWith(blade); else source.after(blade);
    } else {
      blades().replaceChildren(blade);
    }
    if (window.htmx) window.htmx.process(blade);
    history.pushState({ blade: true }, "", link.href);
    blade.scrollIntoView({ behavior: "smooth", inline: "end" });
    const heading = blade.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  }

  function closeBlade(blade, fallbackHref) {
    const previous = blade.previousElementSibling;
    if (previous && previous.classList.contains("blade")) {
      blade.remove();
      history.pushState({ blade: true }, "", previous.dataset.bladeUrl);
    } else {
      window.location = fallbackHref;
    }
  }

  function togglePanel(id) {
    for (const panel of document.querySelectorAll(".panel")) {
      panel.hidden = panel.id === id ? !panel.hidden : true;
    }
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-blade]");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      openBlade(link, link.dataset.blade).catch(() => { window.location = link.href; });
      return;
    }
    const folded = event.target.closest(".blade");
    if (folded && folded.offsetWidth < 60 && folded.dataset.bladeUrl) {
      window.location = folded.dataset.bladeUrl;
      return;
    }
    const action = event.target.closest("[data-action]");
    if (!action) {
      if (!event.target.closest(".search")) document.getElementById("search-results")?.replaceChildren();
      return;
    }
    switch (action.dataset.action) {
      case "close-blade":
        event.preventDefault();
        closeBlade(action.closest(".blade"), action.href);
        break;
      case "toggle-panel":
        togglePanel(action.dataset.panel);
        break;
      case "close-panel":
        action.closest(".panel").hidden = true;
        break;
      case "toggle-nav": {
        const body = document.body;
        if (window.matchMedia("(max-width: 720px)").matches) {
          body.dataset.nav = body.dataset.nav === "mobile-open" ? "open" : "mobile-open";
        } else {
          body.dataset.nav = body.dataset.nav === "closed" ? "open" : "closed";
          document.cookie = "nav=" + body.dataset.nav + ";path=/;SameSite=Lax";
        }
        break;
      }
    }
  });

  document.addEventListener("input", (event) => {
    if (event.target.dataset.action !== "filter-menu") return;
    const needle = event.target.value.toLowerCase();
    const menu = event.target.closest(".resource-menu");
    for (const item of menu.querySelectorAll("li")) {
      item.hidden = needle && !item.textContent.toLowerCase().includes(needle);
    }
  });

  document.addEventListener("submit", (event) => {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const openPanel = document.querySelector(".panel:not([hidden])");
    if (openPanel) { openPanel.hidden = true; return; }
    const results = document.getElementById("search-results");
    if (results && results.children.length) { results.replaceChildren(); return; }
    const all = document.querySelectorAll("#blades > .blade");
    if (all.length > 1) closeBlade(all[all.length - 1]);
  });

  window.addEventListener("popstate", () => window.location.reload());

  // Wizards: tabs, the "create new" resource group field, groups of the chosen subscription.
  function showTab(form, name) {
    for (const tab of form.querySelectorAll("[data-tab]")) {
      tab.classList.toggle("active", tab.dataset.tab === name);
      tab.setAttribute("aria-selected", tab.dataset.tab === name ? "true" : "false");
    }
    for (const panel of form.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  }
  function syncWizard(form) {
    const group = form.querySelector("#id_resource_group");
    const subscription = form.querySelector("#id_subscription");
    if (!group || !subscription) return;
    for (const option of group.options) {
      if (option.dataset.subscription) option.hidden = option.dataset.subscription !== subscription.value;
    }
    if (group.selectedOptions[0] && group.selectedOptions[0].hidden) group.value = "";
    const newField = form.querySelector("#new-group-field");
    if (newField) newField.hidden = group.value !== "";
  }
  document.addEventListener("click", (event) => {
    const form = event.target.closest(".wizard-form");
    if (!form) return;
    const tab = event.target.closest("[data-tab], [data-tab-link]");
    if (!tab) return;
    event.preventDefault();
    if (tab.hasAttribute("data-submit-review")) {
      form.querySelector("button[name=step][value=review]").click();
      return;
    }
    showTab(form, tab.dataset.tab || tab.dataset.tabLink);
  });
  document.addEventListener("change", (event) => {
    const form = event.target.closest(".wizard-form");
    if (form) syncWizard(form);
  });
  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll(".wizard-form")) syncWizard(form);
  });

  // Toasts: other scripts (live updates) call BackupPortal.toast(title, body).
  window.BackupPortal = {
    fetchBlade,
    toast(title, body) {
      const box = document.createElement("div");
      box.className = "toast";
      box.setAttribute("role", "status");
      const strong = document.createElement("strong");
      strong.textContent = title;
      const p = document.createElement("p");
      p.textContent = body || "";
      box.append(strong, p);
      document.getElementById("toasts").append(box);
      setTimeout(() => box.remove(), 6000);
    },
  };
})();

// A checkbox with data-enables="id" enables that control (the reference's "Already downloaded" step).
document.addEventListener("change", (event) => {
  const id = event.target.dataset && event.target.dataset.enables;
  if (id) document.getElementById(id).disabled = !event.target.checked;
});
