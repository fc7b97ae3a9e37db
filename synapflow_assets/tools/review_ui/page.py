"""The review page: one HTML document with its style and script inline (no build step, nothing fetched from
elsewhere). The script preloads every picture; a key press posts the decision and shows the next event when
the server has stored it (keys pressed meanwhile queue, in order)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Review __ANIMAL__</title>
<style>
body { font: 15px system-ui, sans-serif; margin: 0; background: #151515; color: #eee; }
header { display: flex; gap: 2em; align-items: baseline; padding: .6em 1em; background: #262626; }
#progress { font-weight: bold; font-size: 1.4em; }
main { padding: .5em 1em; }
#picture { height: min(55vh, 560px); image-rendering: pixelated; display: block; margin: .4em 0; }
#info td { padding: .1em 1em .1em 0; vertical-align: top; }
#info td:first-child { color: #aaa; }
kbd { background: #333; border: 1px solid #666; border-radius: 3px; padding: 0 .35em; }
#message { color: #fc6; min-height: 1.2em; }
#log { color: #bbb; }
</style></head>
<body>
<header><span id="progress" data-position="">loading...</span>
<span>animal <b>__ANIMAL__</b>, corrections by <b id="by"></b></span><span id="stored"></span></header>
<main>
<section id="event">
<div id="sides"></div>
<img id="picture" alt="the event's place in both sessions">
<table id="info"></table>
</section>
<section id="done" hidden></section>
<p><kbd>P</kbd> present &middot; <kbd>E</kbd> eliminated &middot; <kbd>N</kbd> new &middot;
<kbd>O</kbd> out of view &middot; <kbd>X</kbd> not a spine &middot; <kbd>S</kbd> skip &middot;
<kbd>Backspace</kbd> or <kbd>U</kbd> undo &middot; <kbd>F</kbd> finish: recompute the dynamics
<button id="finish">Finish</button></p>
<p id="message"></p>
<ol id="log" reversed></ol>
</main>
<script>
"use strict";
const KEYS = {p: "present", e: "eliminated", n: "new", o: "out_of_view", x: "unconfirmed", s: null};
const $ = (id) => document.getElementById(id);
let events = [], pictures = [], state = null, chain = Promise.resolve();

function post(path, body) {
  // in order, one at a time; the position is read when the request leaves, after the previous reply
  chain = chain.then(async () => {
    const reply = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                     body: JSON.stringify({...body, position: state.position})});
    const answer = await reply.json();
    if (answer.error) throw new Error(answer.error);
    render(answer);
  }).catch((error) => { $("message").textContent = "error: " + error.message; });
}

function row(name, value) {
  const tr = $("info").insertRow();
  tr.insertCell().textContent = name;
  tr.insertCell().textContent = value;
}

function render(s) {
  state = s;
  $("progress").textContent = s.position + " of " + s.total;
  $("progress").dataset.position = s.position;
  $("stored").textContent = s.stored + " corrections stored" + (s.dirty ? ", dynamics not recomputed yet (F)" : "");
  $("message").textContent = s.message;
  const e = events[s.position];
  $("event").hidden = !e;
  $("done").hidden = !!e;
  if (e) {
    $("picture").src = pictures[s.position].src;
    $("sides").textContent = e.other_session
      ? "left: " + e.other_session + " (compared with), right: " + e.session + " (the event)"
      : e.session + " (no place in another session)";
    $("info").replaceChildren();
    row("event", "track " + e.track_id + " " + e.status + (e.redetected ? " (redetected)" : "") + " in " + e.session);
    row("confidence", e.confidence.toFixed(3));
    row("reason", e.reason || "");
    if (e.evidence_score !== null) row("evidence score", e.evidence_score.toFixed(3));
    if (e.contrast_ratio !== null) row("contrast ratio", e.contrast_ratio.toFixed(2));
    if (e.x_um !== null) row("place (um)", [e.x_um, e.y_um, e.z_um].map((v) => v.toFixed(1)).join(", "));
  } else {
    $("done").textContent = "All " + s.total + " events reviewed. F: recompute the dynamics; Backspace: undo.";
  }
  $("log").start = s.steps.length;  // numbered as taken, the latest first
  $("log").replaceChildren(...s.steps.slice(-8).reverse().map((step) => {
    const li = document.createElement("li");
    li.textContent = step.session + " track " + step.track_id + ": " + step.from + " -> " + (step.to || "skipped");
    return li;
  }));
}

function finish() {
  $("message").textContent = "recomputing spine_dynamics through Dagster...";
  post("/finish", {});
}

document.addEventListener("keydown", (ev) => {
  if (!state || ev.repeat || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const key = ev.key.toLowerCase();
  if (key in KEYS) post("/decisions", {status: KEYS[key]});
  else if (key === "backspace" || key === "u") post("/undo", {});
  else if (key === "f") finish();
  else return;
  ev.preventDefault();
});
$("finish").addEventListener("click", finish);

fetch("/events").then((reply) => reply.json()).then((loaded) => {
  events = loaded.events;
  $("by").textContent = loaded.corrected_by;
  pictures = events.map((e, i) => {
    const image = new Image();
    image.src = "/pictures/" + loaded.token + "/" + i + ".png";
    return image;
  });
  render(loaded.state);
});
</script>
</body></html>
"""
