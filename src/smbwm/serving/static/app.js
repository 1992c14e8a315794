// The page: three panes (play, make a level, watch an agent) around one canvas fed by /ws/game.
// Key handling only translates browser key names to the player's (pygame) names; which key is which
// button, and how held keys combine, is decided on the server (src/game/keymap.py).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { options: null, ws: null, scale: 3, sides: ["dream"], held: new Set(), levelId: null,
                token: null, lastAlive: 0, drawChain: Promise.resolve() };
window.smb = { framesDrawn: 0, step: 0, status: "no game", lastError: "" };   // read by the browser tests

const BROWSER_KEYS = { ArrowRight: "right", ArrowLeft: "left", ArrowUp: "up", ArrowDown: "down", " ": "space",
                       Enter: "return", Tab: "tab", Escape: "escape" };
function keyName(e) {
  if (e.key === "Shift") return e.location === 2 ? "right shift" : "left shift";
  if (BROWSER_KEYS[e.key]) return BROWSER_KEYS[e.key];
  return e.key.length === 1 ? e.key.toLowerCase() : null;
}

function setStatus(text) { $("state").textContent = text; window.smb.status = text; }
function banner(text) { $("banner").textContent = text || ""; $("banner").classList.toggle("hidden", !text); }

function fillSelect(sel, items) {
  sel.innerHTML = "";
  for (const [value, label] of items) {
    const o = document.createElement("option"); o.value = value; o.textContent = label; sel.appendChild(o);
  }
}

async function loadOptions() {
  const o = await (await fetch("/api/options")).json();
  state.options = o;
  document.querySelectorAll(".spawns").forEach((s) => fillSelect(s, o.spawns.map((p) => [p.id, `${p.id} (${p.level})`])));
  document.querySelectorAll(".samplers").forEach((s) => fillSelect(s, o.samplers.map((n) => [n, n])));
  const composer = $("composer");
  for (const [part, words] of Object.entries(o.levels.parts)) {
    const sel = document.createElement("select"); sel.dataset.part = part; sel.id = `compose-${part}`;
    fillSelect(sel, words.map((w) => [w, `${w} ${part}`])); sel.value = o.levels.defaults[part];
    sel.addEventListener("change", composePrompt); composer.appendChild(sel);
  }
  composePrompt();
  const lim = o.level_limits;
  $("make-width").min = lim.min_width; $("make-width").max = lim.max_width;
  $("make-temperature").min = lim.min_temperature; $("make-temperature").max = lim.max_temperature;
  $("keys-help").textContent = "Keys: " + Object.entries(o.buttons).map(([b, k]) => `${b}: ${k.join("/")}`).join(", ")
    + " · " + Object.entries(o.controls).map(([c, k]) => `${c}: ${k.join("/")}`).join(", ");
  fillWatchAgents();
}

function composePrompt() {
  const parts = [...document.querySelectorAll("#composer select")].map((s) => `${s.value} ${s.dataset.part}`);
  $("make-prompt").value = parts.join(", ");
}

function fillWatchAgents() {
  const world = $("watch-world").value;
  const names = state.options.agents[world] || [];
  fillSelect($("watch-agent"), names.map((n) => [n, state.options.agent_labels[n] || n]));
  $("watch-spawn").disabled = world === "level";
}

// --- the game ------------------------------------------------------------------------------------
function startGame(request) {
  stopGame();
  banner(""); $("agent-text").textContent = ""; $("agent-text").classList.add("hidden");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/game`);
  ws.binaryType = "arraybuffer";
  state.ws = ws; state.held.clear();
  ws.onopen = () => { ws.send(JSON.stringify({ t: "start", ...request })); setStatus("connecting"); };
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onMessage(JSON.parse(ev.data)) : onFrame(ev.data));
  ws.onclose = () => { if (state.ws === ws) { state.ws = null; $("stop").classList.add("hidden");
                                             if (window.smb.status === "playing") setStatus("game over"); } };
  $("stop").classList.remove("hidden");
  $("screen").focus();
}

function stopGame() {
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); setStatus("stopped"); }
}

function onMessage(m) {
  if (m.t === "queued") { setStatus("waiting"); banner(`All ${m.games} game slots are in use: you are number ${m.position} in line.`); }
  else if (m.t === "busy") { setStatus("busy"); banner(`Busy: ${m.message}`); }
  else if (m.t === "loading") { banner(""); setStatus("loading the game"); }
  else if (m.t === "started") {
    state.sides = m.sides; state.token = m.token; window.smb.sides = m.sides.length; state.scale = m.sides.length > 1 ? 2 : 3;
    const c = $("screen"); c.width = 256 * state.scale * m.sides.length; c.height = 240 * state.scale;
    $("dl-episode").href = `/api/games/${m.token}/episode.hdf5`;
    $("dl-gif").href = `/api/games/${m.token}/last_minute.gif`;
    $("downloads").classList.remove("hidden");
    setStatus("playing"); $("screen").focus();
  } else if (m.t === "step") {
    window.smb.step = m.step;
    $("fps").textContent = `${m.fps.toFixed(1)} fps`; $("step").textContent = `step ${m.step}`;
    $("action").textContent = m.action;
    if (m.paused) setStatus("paused"); else if (window.smb.status === "paused") setStatus("playing");
    if (m.note) banner(m.note);
    if (m.agent_text) { const t = $("agent-text"); t.classList.remove("hidden"); t.textContent = (`${m.step}: ${m.agent_text}\n` + t.textContent).slice(0, 4000); }
  } else if (m.t === "error") { window.smb.lastError = m.message; banner(`Error: ${m.message}`); }
  else if (m.t === "idle") { setStatus("idle"); banner(m.message); }
}

function onFrame(buf) {
  const side = new Uint8Array(buf, 0, 1)[0];
  const blob = new Blob([new Uint8Array(buf, 1)], { type: "image/jpeg" });
  const s = state.scale;
  state.drawChain = state.drawChain.then(() => createImageBitmap(blob)).then((bmp) => {
    const ctx = $("screen").getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bmp, side * 256 * s, 0, 256 * s, 240 * s);
    window.smb.framesDrawn += 1;
  }).catch(() => {});
}

function send(msg) { if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg)); }

function controlFor(name) {
  for (const [control, keys] of Object.entries(state.options.controls)) if (keys.includes(name)) return control;
  return null;
}

function onKey(e, down) {
  if (!state.ws || ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
  const name = keyName(e);
  if (!name) return;
  e.preventDefault();
  const control = controlFor(name);
  if (down && control === "quit") { stopGame(); return; }
  if (down && control && control !== "quit") { send({ t: "control", name: control }); return; }
  if (down) { if (e.repeat) return; state.held.add(name); } else state.held.delete(name);
  send({ t: "keys", held: [...state.held], pressed: down ? [name] : [] });
}

function alive() {
  const now = Date.now();
  if (now - state.lastAlive > 10000) { state.lastAlive = now; send({ t: "alive" }); }
}

// --- make a level --------------------------------------------------------------------------------
async function makeLevel() {
  $("make-error").classList.add("hidden"); $("make-go").disabled = true; $("make-go").textContent = "Generating…";
  try {
    const r = await fetch("/api/level", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: $("make-prompt").value, temperature: Number($("make-temperature").value),
                             width: Number($("make-width").value) }) });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    state.levelId = body.id;
    $("make-png").src = body.png; $("make-ascii").textContent = body.ascii;
    $("make-caption").textContent = `${body.id}: “${body.prompt}”, temperature ${body.temperature}, ${body.width} columns`;
    $("make-result").classList.remove("hidden");
  } catch (err) {
    $("make-error").textContent = err.message; $("make-error").classList.remove("hidden");
    $("make-result").classList.add("hidden");
  } finally { $("make-go").disabled = false; $("make-go").textContent = "Generate"; }
}

function placeholder() {
  const c = $("screen"), ctx = c.getContext("2d");
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height);
  ctx.fillStyle = "#9a9aa8"; ctx.font = "28px system-ui, sans-serif"; ctx.textAlign = "center";
  ctx.fillText("Start a game, play a level, or watch an agent", c.width / 2, c.height / 2);
}

// --- wiring --------------------------------------------------------------------------------------
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === b));
  document.querySelectorAll(".pane").forEach((p) => p.classList.toggle("hidden", p.id !== `pane-${b.dataset.tab}`));
}));
$("play-start").addEventListener("click", () => startGame({ world: $("play-world").value, spawn: $("play-spawn").value,
                                                            sampler: $("play-sampler").value }));
$("make-go").addEventListener("click", makeLevel);
$("make-play").addEventListener("click", () => startGame({ world: "level", level: state.levelId }));
$("make-dream").addEventListener("click", () => startGame({ world: "level_dream", level: state.levelId,
                                                            sampler: $("play-sampler").value }));
$("watch-world").addEventListener("change", fillWatchAgents);
$("watch-start").addEventListener("click", () => {
  const world = $("watch-world").value;
  if (world === "level" && !state.levelId) { banner("Generate a level first (Make a level)."); return; }
  startGame({ world, agent: $("watch-agent").value, spawn: $("watch-spawn").value, level: state.levelId });
});
$("stop").addEventListener("click", stopGame);
document.addEventListener("keydown", (e) => { alive(); onKey(e, true); });
document.addEventListener("keyup", (e) => onKey(e, false));
document.addEventListener("mousemove", alive);
window.addEventListener("blur", () => { state.held.clear(); send({ t: "keys", held: [], pressed: [] }); });
placeholder();
loadOptions();
