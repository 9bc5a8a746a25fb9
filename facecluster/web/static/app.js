// facecluster review: selection, dialogs, the photo viewer, infinite lists and keyboard use.
// Every change is a POST to /api/<action> carrying the page's session token (X-Token).
(() => {
  "use strict";
  const token = document.querySelector('meta[name="token"]').content;
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const head = $(".person-head");
  const currentPerson = head ? head.dataset.person : null;
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

  // -- messages ------------------------------------------------------------------------------
  function toast(message, { error = false, undo = false, link = null } = {}) {
    const box = document.createElement("div");
    box.className = "toast" + (error ? " error" : "");
    box.setAttribute("role", error ? "alert" : "status");
    const text = document.createElement("span");
    text.textContent = message;
    box.append(text);
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.textContent = "Open";
      box.append(a);
    }
    if (undo) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Undo";
      button.addEventListener("click", () => { box.remove(); runUndo(); });
      box.append(button);
    }
    $(".toasts").append(box);
    setTimeout(() => box.remove(), error ? 9000 : 6500);
  }
  function afterReload(message) { sessionStorage.setItem("facecluster-toast", JSON.stringify(message)); }
  const carried = sessionStorage.getItem("facecluster-toast");
  if (carried) {
    sessionStorage.removeItem("facecluster-toast");
    try { const m = JSON.parse(carried); toast(m.text, m); } catch (e) { /* ignore */ }
  }

  // -- talking to the server -------------------------------------------------------------------
  async function post(action, data = {}) {
    let response;
    try {
      response = await fetch(`/api/${action}`, {
        method: "POST", body: JSON.stringify(data),
        headers: { "Content-Type": "application/json", "X-Token": token },
      });
    } catch (e) {
      throw new Error("The review server is not running: start it again with “facecluster review”.");
    }
    let body;
    try { body = await response.json(); } catch (e) { body = { ok: false }; }
    if (!response.ok || !body.ok) {
      const error = new Error(body.error ? capital(body.error) : `The server answered ${response.status}.`);
      error.status = response.status;
      throw error;
    }
    updateBar(body);
    return body;
  }
  const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  function updateBar(body) {
    const button = $('[data-action="undo"]');
    if (button && "undo" in body) {
      button.disabled = !body.undo;
      button.title = body.undo ? `Undo ${body.undo}` : "Nothing to undo";
      const what = body.undo ? `<span class="undo-what"> ${escapeHtml(body.undo)}</span>` : "";
      $(".undo-text", button).innerHTML = "Undo" + what;
    }
    if (body.counts) {
      const tabs = $$(".tabs a .count");
      ["people", "unknown", "rejected"].forEach((key, i) => {
        if (tabs[i] && key in body.counts) tabs[i].textContent = body.counts[key].toLocaleString();
      });
    }
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // What the page does once a change is made.
  function done(body) {
    const message = { text: capital(body.message || "Done"), undo: body.undoable !== false && Boolean(body.undo),
      link: body.link || null };
    if (body.reload) {
      afterReload(message);
      location.reload();
      return;
    }
    if (body.removed) removeFaces(body.removed);
    toast(message.text, message);
  }
  function failed(error) {
    toast(error.message, { error: true });
    if (error.status === 409 && document.body.dataset.page === "queue") setTimeout(() => location.reload(), 1500);
  }

  async function runUndo() {
    try { done(await post("undo")); } catch (e) { failed(e); }
  }
  const undoButton = $('[data-action="undo"]');
  if (undoButton) undoButton.addEventListener("click", runUndo);

  const exportButton = $('[data-action="export"]');
  if (exportButton) exportButton.addEventListener("click", async () => {
    exportButton.classList.add("busy");
    const label = $(".export-text", exportButton);
    const before = label.textContent;
    label.textContent = "Updating…";
    try {
      const body = await post("export");
      toast(capital(body.message));
    } catch (e) { failed(e); }
    exportButton.classList.remove("busy");
    label.textContent = before;
  });

  // -- "Same person?" count ------------------------------------------------------------------
  fetch("/api/queue/count").then((r) => r.json()).then(({ count, limit }) => {
    if (count === null || count === undefined) return;
    const text = count >= limit ? `${limit}+` : String(count);
    $$("[data-queue-count]").forEach((el) => { el.textContent = count ? text : ""; });
    const callout = $("[data-queue-callout]");
    if (callout && count > 0) {
      callout.hidden = false;
      const strong = $("strong", callout);
      if (count === 1) strong.innerHTML = "1 “Same person?” question";
    }
  }).catch(() => {});

  // -- lists that load more as you scroll ------------------------------------------------------
  const loading = new WeakSet();
  async function loadMore(sentinel) {
    const url = sentinel.dataset.more;
    if (!url || loading.has(sentinel)) return;
    loading.add(sentinel);
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`could not load more (${response.status})`);
      document.getElementById(sentinel.dataset.into).insertAdjacentHTML("beforeend", await response.text());
      const next = response.headers.get("X-Next");
      if (next) sentinel.dataset.more = next; else sentinel.remove();
    } catch (e) {
      toast(capital(e.message), { error: true });
      sentinel.remove();
    }
    loading.delete(sentinel);
    if (document.contains(sentinel) && sentinel.getBoundingClientRect().top < innerHeight + 800) loadMore(sentinel);
  }
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => entries.forEach((e) => e.isIntersecting && loadMore(e.target)),
      { rootMargin: "800px 0px" })
    : null;
  const watch = (sentinel) => (observer ? observer.observe(sentinel) : loadMore(sentinel));
  $$("[data-more]").forEach(watch);

  // -- live search on the people page ------------------------------------------------------------
  const search = $("[data-live-search]");
  if (search) {
    let timer = null, asked = 0;
    search.closest("form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 180); });
    async function run() {
      const q = search.value.trim(), ticket = ++asked;
      const response = await fetch(`/people/more?${new URLSearchParams({ q, offset: 0 })}`);
      if (ticket !== asked) return;
      const cards = $("#cards");
      const html = await response.text();
      const total = Number(response.headers.get("X-Total") || 0);
      $$(".page > .empty").forEach((el) => el.remove());
      cards.innerHTML = html || `<div class="empty">Nobody matches “${escapeHtml(q)}”. Search by name, or by id such as 12.</div>`;
      $("[data-total]").textContent = `${total.toLocaleString()} ${total === 1 ? "person" : "people"}` +
        (q ? ` matching “${q}”` : "") + ", largest first";
      let sentinel = $(".more[data-into=cards]");
      const next = response.headers.get("X-Next");
      if (next) {
        if (!sentinel) {
          sentinel = Object.assign(document.createElement("div"), { className: "more", innerHTML: '<span class="spinner"></span>' });
          sentinel.dataset.into = "cards";
          cards.after(sentinel);
        }
        sentinel.dataset.more = next;
        watch(sentinel);
      } else if (sentinel) sentinel.remove();
      history.replaceState(null, "", q ? `/?${new URLSearchParams({ q })}` : "/");
    }
  }

  // -- selecting faces ---------------------------------------------------------------------------
  const bar = $(".selection-bar");
  let anchor = null;
  const chips = () => $$(".chip");
  const selected = () => $$(".chip.selected").map((c) => Number(c.dataset.face));

  function refresh() {
    const count = $$(".chip.selected").length;
    document.body.classList.toggle("selecting", count > 0);
    if (!bar) return;
    bar.hidden = count === 0;
    $(".selected-count strong", bar).textContent = count.toLocaleString();
  }
  function setSelected(chip, on) {
    chip.classList.toggle("selected", on);
    const check = $(".check", chip);
    if (check) check.setAttribute("aria-pressed", on ? "true" : "false");
  }
  function selectRange(from, to) {
    const all = chips();
    let [i, j] = [all.indexOf(from), all.indexOf(to)];
    if (i < 0) i = j;
    if (i > j) [i, j] = [j, i];
    all.slice(i, j + 1).forEach((c) => setSelected(c, true));
  }
  function clearSelection() {
    $$(".chip.selected").forEach((c) => setSelected(c, false));
    anchor = null;
    refresh();
  }

  document.addEventListener("click", (e) => {
    const chip = e.target.closest(".chip");
    if (!chip || e.target.closest("dialog")) return;
    e.preventDefault();
    if (e.target.closest(".zoom")) { openViewer(chip); return; }
    const selecting = document.body.classList.contains("selecting");
    if (e.shiftKey && anchor && document.contains(anchor)) selectRange(anchor, chip);
    else if (e.target.closest(".check") || selecting || e.shiftKey || e.ctrlKey || e.metaKey) {
      setSelected(chip, !chip.classList.contains("selected"));
    } else { openViewer(chip); return; }
    anchor = chip;
    refresh();
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("dialog")) return;
    if (e.key === "Escape" && $$(".chip.selected").length) { clearSelection(); return; }
    if ((e.key === "a" || e.key === "A") && (e.ctrlKey || e.metaKey) && !typing(e.target) && chips().length) {
      e.preventDefault();
      chips().forEach((c) => setSelected(c, true));
      refresh();
    }
    if (e.key === "Enter" && e.target.classList && e.target.classList.contains("chip")) openViewer(e.target);
  });
  $$("[data-select-all]").forEach((b) => b.addEventListener("click", () => {
    const all = chips(), every = all.every((c) => c.classList.contains("selected"));
    all.forEach((c) => setSelected(c, !every));
    refresh();
  }));
  document.addEventListener("click", (e) => {
    const groupButton = e.target.closest("[data-select-group], [data-name-group]");
    if (!groupButton) return;
    const group = groupButton.closest("[data-group]");
    const inGroup = $$(".chip", group), every = inGroup.every((c) => c.classList.contains("selected"));
    if (groupButton.hasAttribute("data-name-group")) {
      clearSelection();
      inGroup.forEach((c) => setSelected(c, true));
      refresh();
      openMove();
    } else {
      inGroup.forEach((c) => setSelected(c, !every));
      refresh();
    }
  });
  if (bar) {
    $("[data-clear]", bar).addEventListener("click", clearSelection);
    bar.addEventListener("click", async (e) => {
      const button = e.target.closest("[data-selection]");
      if (!button) return;
      const action = button.dataset.selection, faces = selected();
      if (action === "move") openMove();
      else if (action === "split") openDialog("split-dialog", { "[data-split-text]": `${plural(faces.length, "face")} become a new person and stay apart from the faces they leave.` });
      else {
        try { done(await post(action, { faces })); } catch (err) { failed(err); }
      }
    });
  }
  function removeFaces(ids) {
    const gone = new Set(ids.map(Number));
    const leaving = chips().filter((c) => gone.has(Number(c.dataset.face)));
    leaving.forEach((c) => { c.classList.remove("selected"); c.classList.add("leaving"); });
    setTimeout(() => {
      leaving.forEach((c) => {
        const group = c.closest("[data-group]");
        c.remove();
        if (group && !$(".chip", group)) group.remove();
      });
      const counter = $("[data-face-count]");
      if (counter) {
        const left = Math.max(0, Number(counter.dataset.faceCount) - leaving.length);
        counter.dataset.faceCount = left;
        counter.textContent = plural(left, "face");
        if (left === 0) location.reload();
      }
      refresh();
    }, 180);
    anchor = null;
    refresh();
  }

  // -- dialogs -----------------------------------------------------------------------------------
  function openDialog(id, texts = {}) {
    const dialog = document.getElementById(id);
    for (const [selector, text] of Object.entries(texts)) $(selector, dialog).textContent = text;
    $$(".form-error", dialog).forEach((el) => el.remove());
    $$("input", dialog).forEach((input) => {
      input.value = "";
      delete input.dataset.person; delete input.dataset.new; delete input.dataset.exact;
    });
    if (id === "move-dialog") $("button.primary", dialog).textContent = "Move";
    if (id === "rename-dialog" && head) $("input", dialog).value = head.dataset.personName || "";
    dialog.showModal();
    const input = $("input", dialog);
    if (input) { input.focus(); input.select(); }
  }
  function openMove() {
    const n = selected().length;
    openDialog("move-dialog", { "[data-move-text]": `Choose the person ${n === 1 ? "this face is" : `these ${n.toLocaleString()} faces are`}, or type a new name.` });
  }
  $$("[data-open]").forEach((b) => b.addEventListener("click", () => openDialog(b.dataset.open)));
  $$("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  $$("dialog.modal").forEach((dialog) => dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); }));

  function formError(form, message) {
    let box = $(".form-error", form);
    if (!box) {
      box = Object.assign(document.createElement("p"), { className: "form-error" });
      box.setAttribute("role", "alert");
      $(".modal-actions", form).before(box);
    }
    box.textContent = message;
  }
  const submitters = {
    rename: (form) => post("name", { person: currentPerson, name: form.elements.name.value }),
    merge: (form) => post("merge", { person: currentPerson, other: chosen(form.elements.other) }),
    split: (form) => post("split", { faces: selected(), name: form.elements.name.value }),
    move: (form) => {
      const input = form.elements.to, faces = selected(), target = chosen(input);
      if (input.dataset.new === "1" || (!input.dataset.person && !/^(person_)?\d+$/i.test(target) && !input.dataset.exact)) {
        return post("split", { faces, name: input.value.trim() });
      }
      return post("move", { faces, to: target });
    },
  };
  function chosen(input) { return input.dataset.person || input.value.trim(); }
  $$("form[data-submit]").forEach((form) => form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("input[data-autocomplete]", form);
    if (input && !input.value.trim()) { formError(form, "Type a name, or choose a person."); return; }
    const button = $("button.primary", form);
    button.disabled = true;
    try {
      const body = await submitters[form.dataset.submit](form);
      form.closest("dialog").close();
      done(body);
    } catch (err) { formError(form, err.message); }
    button.disabled = false;
  }));

  // -- name autocomplete ------------------------------------------------------------------------
  $$("input[data-autocomplete]").forEach((input) => {
    const list = input.nextElementSibling;
    let items = [], active = -1, timer = null, ticket = 0;
    const close = () => { list.hidden = true; active = -1; };
    async function update() {
      const q = input.value.trim(), mine = ++ticket;
      let people = [];
      try { people = await (await fetch(`/api/people?${new URLSearchParams({ q })}`)).json(); } catch (e) { return; }
      if (mine !== ticket) return;
      if (input.hasAttribute("data-exclude-current")) people = people.filter((p) => String(p.id) !== currentPerson);
      const exact = people.find((p) => p.label.toLowerCase() === q.toLowerCase());
      if (exact) input.dataset.exact = exact.id; else delete input.dataset.exact;
      items = people.map((p) => ({ id: p.id, label: p.label, named: Boolean(p.name), faces: p.faces, chip: p.chip }));
      if (input.hasAttribute("data-allow-new") && q && !exact && !/^(person_)?\d+$/i.test(q)) items.push({ new: true, label: q });
      list.innerHTML = items.map((item, i) => item.new
        ? `<li role="option" data-i="${i}"><span class="new-mark">+</span><span class="s-name">New person “${escapeHtml(item.label)}”</span></li>`
        : `<li role="option" data-i="${i}">${item.chip ? `<img src="${item.chip}" alt="">` : '<span class="new-mark"></span>'}<span class="s-name">${escapeHtml(item.label)}</span><span class="s-info">${plural(item.faces, "face")}${item.named ? ` · #${item.id}` : ""}</span></li>`).join("");
      list.hidden = items.length === 0 || document.activeElement !== input;
      active = -1;
      actionLabel();
    }
    // The move dialog's button says what will happen: a move, or a new person.
    function actionLabel() {
      const button = $("button.primary", input.form);
      if (input.form.dataset.submit !== "move") return;
      const text = input.value.trim();
      const creates = input.dataset.new === "1" || (text && !input.dataset.person && !input.dataset.exact && !/^(person_)?\d+$/i.test(text));
      button.textContent = creates ? "Create person" : "Move";
    }
    function pick(i) {
      const item = items[i];
      if (!item) return;
      input.value = item.label;
      if (item.new) { delete input.dataset.person; input.dataset.new = "1"; } else { input.dataset.person = item.id; delete input.dataset.new; }
      close();
      actionLabel();
    }
    function highlight(i) {
      active = (i + items.length) % items.length;
      $$("li", list).forEach((li, k) => li.classList.toggle("active", k === active));
    }
    input.addEventListener("input", () => {
      delete input.dataset.person; delete input.dataset.new;
      clearTimeout(timer); timer = setTimeout(update, 110);
    });
    input.addEventListener("focus", update);
    input.addEventListener("blur", () => setTimeout(close, 150));
    input.addEventListener("keydown", (e) => {
      if (list.hidden || !items.length) return;
      // Enter on a partial name that several people (or one) start with: ask which one, rather
      // than create a new person nobody chose.
      if (e.key === "Enter" && active < 0 && !input.dataset.exact && !input.dataset.person && items.some((item) => !item.new)) {
        e.preventDefault();
        highlight(0);
        formError(input.form, "Choose a person from the list (↑ ↓ then Enter), or “New person” to create one.");
        return;
      }
      if (e.key === "ArrowDown") { e.preventDefault(); highlight(active + 1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(active - 1); }
      else if (e.key === "Enter" && active >= 0) { e.preventDefault(); pick(active); }
      else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(); }
    });
    list.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li");
      if (li) { e.preventDefault(); pick(Number(li.dataset.i)); }
    });
  });

  // -- the photo viewer -------------------------------------------------------------------------
  const viewer = $("#viewer");
  let viewing = null;
  function openViewer(chip) {
    viewing = chip;
    if (!viewer.open) { viewer.showModal(); viewer.focus(); }
    showFace(chip);
  }
  async function showFace(chip) {
    const face = chip.dataset.face, all = chips(), i = all.indexOf(chip);
    $(".nav.prev", viewer).disabled = i <= 0;
    $(".nav.next", viewer).disabled = i < 0 || i >= all.length - 1;
    const select = $(".viewer-select", viewer);
    select.classList.toggle("on", chip.classList.contains("selected"));
    $(".viewer-select span", viewer).textContent = chip.classList.contains("selected") ? "Selected" : "Select";
    let info;
    try {
      const response = await fetch(`/api/face/${face}`);
      if (!response.ok) throw new Error("This face is gone (rescanned or removed).");
      info = await response.json();
    } catch (e) { toast(e.message, { error: true }); viewer.close(); return; }
    if (viewing !== chip) return;
    $(".viewer-file", viewer).textContent = info.file + (info.time !== null ? ` · ${clock(info.time)}` : "");
    $(".viewer-folder", viewer).textContent = info.folder;
    const me = info.faces.find((f) => String(f.id) === face) || { label: "unknown", href: "/unknown" };
    const personLink = $(".viewer-person", viewer);
    personLink.href = me.href;
    $("span", personLink).textContent = me.label;
    const img = $(".photo img", viewer), boxes = $(".boxes", viewer), missing = $(".photo-missing", viewer);
    boxes.innerHTML = "";
    img.hidden = false; missing.hidden = true;
    img.onerror = () => { img.hidden = true; missing.hidden = false; boxes.innerHTML = ""; };
    img.onload = () => { fit(); drawBoxes(info, face, boxes); };
    if (info.image) img.src = info.image; else img.onerror();
    if (img.complete && img.naturalWidth && img.src.endsWith(info.image)) { fit(); drawBoxes(info, face, boxes); }
  }
  // The photo as large as the screen allows (small photos too, up to 3x).
  function fit() {
    const img = $(".photo img", viewer), stage = $(".viewer-stage", viewer);
    if (!img.naturalWidth) return;
    const narrow = innerWidth <= 760;
    const width = stage.clientWidth - (narrow ? 16 : 130), height = stage.clientHeight - (narrow ? 84 : 20);
    const scale = Math.max(0.05, Math.min(width / img.naturalWidth, height / img.naturalHeight, 3));
    img.style.width = `${Math.round(img.naturalWidth * scale)}px`;
    img.style.height = `${Math.round(img.naturalHeight * scale)}px`;
  }
  addEventListener("resize", () => { if (viewer && viewer.open) fit(); });
  function drawBoxes(info, face, boxes) {
    const img = $(".photo img", viewer);
    const width = info.width || img.naturalWidth, height = info.height || img.naturalHeight;
    boxes.innerHTML = info.faces.map((f) => {
      const [l, t, r, b] = f.box;
      const style = `left:${(100 * l) / width}%;top:${(100 * t) / height}%;width:${(100 * (r - l)) / width}%;height:${(100 * (b - t)) / height}%`;
      const kind = String(f.id) === face ? "current" : f.person === null ? "unknown" : "";
      return `<div class="box ${kind}" style="${style}"><a href="${f.href}" title="Face ${f.id}: ${escapeHtml(f.label)}">${escapeHtml(f.label)}</a></div>`;
    }).join("");
  }
  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  function step(delta) {
    const all = chips(), i = all.indexOf(viewing) + delta;
    if (viewing && all[i]) { viewing = all[i]; showFace(all[i]); all[i].scrollIntoView({ block: "nearest" }); }
  }
  if (viewer) {
    $(".nav.prev", viewer).addEventListener("click", () => step(-1));
    $(".nav.next", viewer).addEventListener("click", () => step(1));
    $(".viewer-select", viewer).addEventListener("click", () => {
      if (!viewing) return;
      setSelected(viewing, !viewing.classList.contains("selected"));
      anchor = viewing;
      refresh();
      showFace(viewing);
    });
    viewer.addEventListener("keydown", (e) => {
      if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
      if (e.key === "ArrowRight") { e.preventDefault(); step(1); }
    });
    viewer.addEventListener("click", (e) => { if (e.target.classList.contains("viewer-stage")) viewer.close(); });
    viewer.addEventListener("close", () => { $(".photo img", viewer).removeAttribute("src"); viewing = null; });
  }

  // -- the "Same person?" queue -------------------------------------------------------------------
  const question = $("[data-question]");
  if (question) {
    const buttons = $$("[data-answer]", question);
    async function answer(reply) {
      buttons.forEach((b) => { b.disabled = true; });
      try { done(await post("answer", { question: question.dataset.question, answer: reply })); }
      catch (e) { failed(e); buttons.forEach((b) => { b.disabled = false; }); }
    }
    buttons.forEach((b) => b.addEventListener("click", () => answer(b.dataset.answer)));
    document.addEventListener("keydown", (e) => {
      if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey || $("dialog[open]")) return;
      const reply = { y: "yes", n: "no", s: "skip" }[e.key.toLowerCase()];
      if (reply && !buttons[0].disabled) { e.preventDefault(); answer(reply); }
      if (e.key.toLowerCase() === "u" && undoButton && !undoButton.disabled) { e.preventDefault(); runUndo(); }
    });
  }
})();
