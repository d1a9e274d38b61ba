// tfode explorer: every figure on this page is an answer of the model server's REST API
// (/v1/models/NAME:predict), forwarded on this page's origin by tfode-explore.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22"];

// What tests and the benchmark read: requests in flight, and how long each action took to show.
window.explorerLandmarks = () => (state.landmarks ? state.landmarks.sentences : []);
const explorer = window.explorer = { pending: 0, ready: false, timings: [], errors: 0,
                                     idle: () => !state.slider.busy && !state.slider.again };

const state = {
  model: null, maxRows: 32, units: 0, signatures: new Set(),
  landmarks: null,       // {sentences, points}
  drawn: {},             // layer name -> [{point, code, label}] drawn on the map
  pair: null,            // {a, b} of the last walk
  slider: { busy: false, again: false },
};

const $ = (id) => document.getElementById(id);

// -- requests ---------------------------------------------------------------------------------

class ServerError extends Error {}

async function request(path, body) {
  explorer.pending += 1;
  showProgress();
  try {
    let answer;
    try {
      answer = await fetch(path, body === undefined ? {} : {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (error) {
      throw new ServerError(`The explorer does not answer (${error.message}). Is tfode-explore running?`);
    }
    const text = await answer.text();
    let json = null;
    try { json = JSON.parse(text); } catch (error) { /* reported below */ }
    if (!answer.ok) {
      throw new ServerError(json && json.error ? json.error : `${answer.status} ${answer.statusText}: ${text.slice(0, 200)}`);
    }
    if (json === null) throw new ServerError(`The server's answer is not JSON: ${text.slice(0, 200)}`);
    return json;
  } finally {
    explorer.pending -= 1;
    showProgress();
  }
}

// One signature, columnar inputs; its outputs by name (a lone output is named by the metadata).
async function predict(signature, inputs) {
  if (!state.outputNames) await loadModel(state.model);  // e.g. the server was down at start
  const answer = await request(`/v1/models/${encodeURIComponent(state.model)}:predict`,
                               { signature_name: signature, inputs });
  const outputs = answer.outputs;
  if (outputs !== null && typeof outputs === "object" && !Array.isArray(outputs)) return outputs;
  return { [state.outputNames[signature][0]]: outputs };
}

// Rows beyond the server's batch size go in several requests, sent together (the server batches).
async function predictRows(signature, inputs) {
  const names = Object.keys(inputs);
  const rows = inputs[names[0]].length;
  const parts = [];
  for (let start = 0; start < rows; start += state.maxRows) {
    const part = {};
    for (const name of names) part[name] = inputs[name].slice(start, start + state.maxRows);
    parts.push(predict(signature, part));
  }
  const answers = await Promise.all(parts);
  const joined = {};
  for (const name of Object.keys(answers[0])) joined[name] = answers.flatMap((answer) => answer[name]);
  return joined;
}

let progressTimer = null;
function showProgress() {
  clearTimeout(progressTimer);
  if (explorer.pending === 0) { $("status").textContent = ""; $("status").classList.remove("busy"); return; }
  progressTimer = setTimeout(() => {  // only a wait a person notices
    if (explorer.pending > 0) { $("status").textContent = "working…"; $("status").classList.add("busy"); }
  }, 150);
}

function showError(error) {
  explorer.errors += 1;
  const box = $("error");
  box.textContent = error instanceof ServerError ? error.message : `Unexpected error: ${error.message || error}`;
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

// Runs an action, reports any error on the page, and records how long it took to show.
async function act(name, action) {
  const start = performance.now();
  clearError();
  try {
    await action();
    explorer.timings.push({ name, ms: performance.now() - start });
  } catch (error) {
    showError(error);
  }
}

// -- the model --------------------------------------------------------------------------------

async function loadModel(name) {
  state.model = name;
  state.outputNames = null;
  state.timeStep = undefined;
  state.landmarks = null;
  state.drawn = {};
  const metadata = await request(`/v1/models/${encodeURIComponent(name)}/metadata`);
  const defs = metadata.metadata.signature_def.signature_def;
  state.signatures = new Set(Object.keys(defs));
  state.outputNames = {};
  for (const [signature, def] of Object.entries(defs)) state.outputNames[signature] = Object.keys(def.outputs || {}).sort();
  const latent = defs.encode.outputs.latent.tensor_shape.dim;
  state.units = Number(latent[latent.length - 1].size);
  $("model-info").textContent = `version ${metadata.model_spec.version}, ${state.units} units`;
  if (state.signatures.has("landmarks")) {
    const answer = await predict("landmarks", { count: [100000] });
    state.landmarks = { sentences: answer.sentences[0], points: answer.points[0] };
  }
  drawMap();
  if (!state.landmarks) {
    $("neighbours-of").textContent = "This export holds no latent map (export it with landmark sentences).";
  }
}

// -- the hidden dynamics of one code ----------------------------------------------------------

// Times the curves are drawn at between two tokens: enough to show the hand-over, and the
// trajectory's cost grows with every time asked.
const SAMPLES_PER_TOKEN = 3;

// The decoder's states and likeliest tokens at times from 0 to its last token, from a code
// (`sentence`: the code's decode, when it is known; a request finds it otherwise).
async function dynamics(code, sentence) {
  if (sentence === undefined || state.timeStep === undefined) {
    const decoded = await predict("decode_latent", { latent: [code] });
    sentence = decoded.sentences[0];
    state.timeStep = decoded.token_times[0][0];  // Δt: token k is read at k·Δt
  }
  const length = (sentence ? sentence.split(" ").length : 0) + 1;  // the tokens and <eos>
  const step = state.timeStep;
  const times = Array.from({ length }, (_, k) => (k + 1) * step);
  const perToken = Math.max(1, Math.min(SAMPLES_PER_TOKEN, Math.floor((state.maxRows - 1) / length)));
  const grid = [];
  for (let i = 0; i <= length * perToken; i += 1) grid.push((i * step) / perToken);
  const rows = await predictRows("trajectory_latent", { latent: grid.map(() => code), time: grid });
  let points = null;
  if (state.signatures.has("locate")) {
    const located = await predictRows("locate", { codes: rows.state.map((h) => h.slice(0, state.units)) });
    points = located.points;
  }
  return { sentence, grid, tokenTimes: times, perToken, rows, points };
}

function drawProbabilities(svg, result) {
  clear(svg);
  const width = 640, height = Number(svg.getAttribute("viewBox").split(" ")[3]);
  const left = 36, right = 26, top = 18, bottom = 22;
  const tMax = result.grid[result.grid.length - 1];
  const x = (t) => left + ((width - left - right) * t) / tMax;
  const y = (p) => top + (height - top - bottom) * (1 - p);
  axis(svg, left, y(0), width - right, y(0));
  axis(svg, left, y(0), left, y(1));
  text(svg, 2, y(1) + 4, "1");
  text(svg, 2, y(0), "0");
  text(svg, width - right - 10, height - 4, "t");
  // One curve per token that is ever the likeliest.
  const tokens = [];
  result.rows.top_k_tokens.forEach((top) => { if (!tokens.includes(top[0])) tokens.push(top[0]); });
  tokens.forEach((token, index) => {
    const colour = PALETTE[index % PALETTE.length];
    const values = result.rows.top_k_tokens.map((top, row) => {
      const at = top.indexOf(token);
      return at < 0 ? 0 : result.rows.top_k_probabilities[row][at];
    });
    const path = document.createElementNS(SVG, "polyline");
    path.setAttribute("points", values.map((p, i) => `${x(result.grid[i])},${y(p)}`).join(" "));
    path.setAttribute("stroke", colour);
    path.setAttribute("class", "curve");
    path.appendChild(title(token));
    svg.appendChild(path);
  });
  // The token read at each t_k, in its curve's colour.
  result.tokenTimes.forEach((t, k) => {
    const row = (k + 1) * result.perToken;
    const token = result.rows.top_k_tokens[row][0];
    const mark = text(svg, x(t), top - 5, token);
    mark.setAttribute("text-anchor", "middle");
    mark.setAttribute("fill", PALETTE[tokens.indexOf(token) % PALETTE.length]);
    mark.setAttribute("class", "token");
    const tick = axis(svg, x(t), y(0), x(t), y(0) + 4);
    tick.setAttribute("class", "tick");
  });
}

// -- a sentence -------------------------------------------------------------------------------

async function showSentence() {
  const sentence = $("sentence").value;
  const [decoded, encoded] = await Promise.all([predict("decode", { sentences: [sentence] }),
                                                predict("encode", { sentences: [sentence] })]);
  state.timeStep = decoded.token_times[0][0];
  $("reconstruction").textContent = decoded.sentences[0];
  $("nfe").textContent = `(NFE ${decoded.nfe[0]}${decoded.truncated[0] ? ", input truncated" : ""})`;
  const result = await dynamics(encoded.latent[0], decoded.sentences[0]);
  drawProbabilities($("probabilities"), result);
  setCurve("trajectory", result, (t) => `h(t=${t.toFixed(2)}) of “${sentence}”`);
}

// The curve h(t) of a `dynamics` result on the map, each token written where it is read.
function setCurve(name, result, label) {
  const tokens = {};
  result.tokenTimes.forEach((t, k) => {
    const row = (k + 1) * result.perToken;
    tokens[row] = result.rows.top_k_tokens[row][0];
  });
  setLayer(name, result.points, result.rows.state.map((h) => h.slice(0, state.units)), result.grid.map(label), tokens);
}

// -- two sentences ----------------------------------------------------------------------------

function alphas(count) { return Array.from({ length: count }, (_, i) => i / (count - 1)); }

async function walk() {
  const a = $("sentence-a").value, b = $("sentence-b").value;
  state.pair = { a, b };
  $("alpha").disabled = false;
  await Promise.all([drawPaths(a, b, Number($("points").value)), drawSlider()]);
}

// The linear and slerp lines and the model's path, as lists and on the map.
async function drawPaths(a, b, count) {
  const line = alphas(count);
  const rows = (value) => line.map(() => value);
  const lines = predictRows("interpolate", {
    sentence_a: rows(a).concat(rows(a)), sentence_b: rows(b).concat(rows(b)),
    alpha: line.concat(line), mode: rows("linear").concat(rows("slerp")),
  });
  const best = state.signatures.has("path")
    ? predict("path", { sentence_a: [a], sentence_b: [b], points: [count] }) : Promise.resolve(null);
  const [interpolated, found] = await Promise.all([lines, best]);
  const linear = { sentences: interpolated.sentence.slice(0, count), codes: interpolated.code.slice(0, count) };
  const slerp = { sentences: interpolated.sentence.slice(count), codes: interpolated.code.slice(count) };
  listPath($("path-linear"), linear.sentences);
  listPath($("path-slerp"), slerp.sentences);
  listPath($("path-best"), found ? found.sentences[0] : []);
  if (state.signatures.has("locate")) {
    const codes = linear.codes.concat(slerp.codes, found ? found.codes[0] : []);
    const located = await predictRows("locate", { codes });
    const labels = (name, sentences) => sentences.map((s, i) => `${name} ${i + 1}: ${s}`);
    setLayer("linear", located.points.slice(0, count), linear.codes, labels("linear", linear.sentences));
    setLayer("slerp", located.points.slice(count, 2 * count), slerp.codes, labels("slerp", slerp.sentences));
    if (found) setLayer("best", located.points.slice(2 * count), found.codes[0], labels("path", found.sentences[0]));
  }
}

// The words of each sentence that the previous one did not have (longest common subsequence).
function changedWords(previous, words) {
  const table = Array.from({ length: previous.length + 1 }, () => new Array(words.length + 1).fill(0));
  for (let i = previous.length - 1; i >= 0; i -= 1) {
    for (let j = words.length - 1; j >= 0; j -= 1) {
      table[i][j] = previous[i] === words[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const changed = new Array(words.length).fill(true);
  for (let i = 0, j = 0; i < previous.length && j < words.length;) {
    if (previous[i] === words[j]) { changed[j] = false; i += 1; j += 1; }
    else if (table[i + 1][j] >= table[i][j + 1]) i += 1;
    else j += 1;
  }
  return changed;
}

function listPath(list, sentences) {
  list.replaceChildren();
  let previous = null;
  for (const sentence of sentences) {
    const item = document.createElement("li");
    item.dataset.sentence = sentence;
    const words = sentence.split(" ");
    const changed = previous === null ? words.map(() => false) : changedWords(previous, words);
    words.forEach((word, i) => {
      if (i > 0) item.appendChild(document.createTextNode(" "));
      if (changed[i]) { const mark = document.createElement("mark"); mark.textContent = word; item.appendChild(mark); }
      else item.appendChild(document.createTextNode(word));
    });
    if (previous !== null && sentence === previous.join(" ")) item.classList.add("repeat");
    list.appendChild(item);
    previous = words;
  }
}

// The sentence at the slider's α and its h_α(t).
async function drawSlider() {
  const alpha = Number($("alpha").value);
  const answer = await predict("interpolate", {
    sentence_a: [state.pair.a], sentence_b: [state.pair.b], alpha: [alpha], mode: [$("mode").value],
  });
  $("alpha-sentence").textContent = answer.sentence[0];
  $("alpha-sentence").dataset.alpha = alpha.toFixed(2);
  const result = await dynamics(answer.code[0], answer.sentence[0]);
  drawProbabilities($("alpha-probabilities"), result);
  setCurve("alpha", result, (t) => `h_α(t=${t.toFixed(2)}) at α=${alpha.toFixed(2)}`);
}

// A move of the slider (or of its mode). Moves during a request collapse into one more.
async function moveSlider() {
  $("alpha-value").textContent = Number($("alpha").value).toFixed(2);
  if (!state.pair) return;
  if (state.slider.busy) { state.slider.again = true; return; }
  state.slider.busy = true;
  try {
    await act("slider", drawSlider);
  } finally {
    state.slider.busy = false;
  }
  if (state.slider.again) { state.slider.again = false; await moveSlider(); }
}

// -- the map ----------------------------------------------------------------------------------

// A layer of points on the map, each with its code (or state) and a label. A path's points are
// all drawn large; a curve's (`tokens`: point index → token) only where a token is read.
function setLayer(name, points, codes, labels, tokens = null) {
  if (!points) return;
  state.drawn[name] = { points, codes, labels, tokens };
  drawMap();
}

// The map's frame: every landmark and layer, or (`map-fit`, once something is drawn) the drawn
// layers and a margin around them, where the test sentences nearest to them lie.
const MAP = { pad: 16, margin: 0.15 };  // its size is the SVG's viewBox

function mapScale() {
  const drawn = Object.values(state.drawn).flatMap((layer) => layer.points);
  const fit = $("map-fit").checked && drawn.length > 0;
  const framed = fit ? drawn : [...(state.landmarks ? state.landmarks.points : []), ...drawn];
  if (!framed.length) return null;
  const xs = framed.map((p) => p[0]), ys = framed.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (fit) {
    const [dx, dy] = [(x1 - x0) * MAP.margin, (y1 - y0) * MAP.margin];
    [x0, x1, y0, y1] = [x0 - dx, x1 + dx, y0 - dy, y1 + dy];
  }
  const { width, height } = $("map").viewBox.baseVal, { pad } = MAP;
  const scale = Math.min((width - 2 * pad) / (x1 - x0 || 1), (height - 2 * pad) / (y1 - y0 || 1));
  return (p) => [pad + (p[0] - x0) * scale, height - pad - (p[1] - y0) * scale];
}

function onMap([x, y]) {
  const { width, height } = $("map").viewBox.baseVal;
  return x >= 0 && x <= width && y >= 0 && y <= height;
}

function drawMap() {
  const svg = $("map");
  clear(svg);
  const at = mapScale();
  if (!at) return;
  if (state.landmarks) {
    state.landmarks.points.forEach((point, i) => {
      const sentence = state.landmarks.sentences[i];
      if (!sentence || !onMap(at(point))) return;
      const dot = circle(svg, at(point), 2.5, "landmark");
      dot.appendChild(title(sentence));
      dot.addEventListener("click", () => act("neighbours", () => neighboursOfSentence(sentence)));
    });
  }
  for (const [name, layer] of Object.entries(state.drawn)) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", layer.points.map((p) => at(p).join(",")).join(" "));
    line.setAttribute("class", `layer ${name}`);
    svg.appendChild(line);
    layer.points.forEach((point, i) => {
      const token = layer.tokens ? layer.tokens[i] : undefined;
      const dot = circle(svg, at(point), !layer.tokens || token !== undefined ? 4 : 2, `point ${name}`);
      dot.appendChild(title(layer.labels[i]));
      if (token !== undefined) {
        const [x, y] = at(point);
        text(svg, x + 5, y - 4, token).setAttribute("class", `token-label ${name}`);
      }
      const code = layer.codes[i];
      dot.addEventListener("mouseenter", () => act("neighbours", () => neighboursOfCode(code, layer.labels[i])));
      dot.addEventListener("click", () => act("neighbours", () => neighboursOfCode(code, layer.labels[i])));
    });
  }
}

async function neighboursOfCode(code, label) {
  const answer = await predict("locate", { codes: [code] });
  $("neighbours-of").textContent = label;
  const list = $("neighbour-list");
  list.replaceChildren();
  answer.neighbours[0].forEach((sentence, i) => {
    const item = document.createElement("li");
    item.textContent = `${sentence} (${answer.distances[0][i].toFixed(2)})`;
    list.appendChild(item);
  });
}

async function neighboursOfSentence(sentence) {
  const encoded = await predict("encode", { sentences: [sentence] });
  await neighboursOfCode(encoded.latent[0], `test sentence: ${sentence}`);
}

// -- SVG helpers ------------------------------------------------------------------------------

function clear(svg) { svg.replaceChildren(); }
function title(words) { const t = document.createElementNS(SVG, "title"); t.textContent = words; return t; }
function axis(svg, x1, y1, x2, y2) {
  const line = document.createElementNS(SVG, "line");
  Object.entries({ x1, y1, x2, y2 }).forEach(([k, v]) => line.setAttribute(k, v));
  line.setAttribute("class", "axis");
  svg.appendChild(line);
  return line;
}
function text(svg, x, y, words) {
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", x); label.setAttribute("y", y); label.textContent = words;
  svg.appendChild(label);
  return label;
}
function circle(svg, [cx, cy], r, kind) {
  const dot = document.createElementNS(SVG, "circle");
  dot.setAttribute("cx", cx); dot.setAttribute("cy", cy); dot.setAttribute("r", r);
  dot.setAttribute("class", kind);
  svg.appendChild(dot);
  return dot;
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  const config = await request("/explorer/config.json");
  state.maxRows = config.max_rows;
  const menu = $("model");
  for (const name of config.models) { const option = document.createElement("option"); option.textContent = name; menu.appendChild(option); }
  menu.addEventListener("change", () => act("model", () => loadModel(menu.value)));
  $("sentence-form").addEventListener("submit", (event) => { event.preventDefault(); act("sentence", showSentence); });
  $("pair-form").addEventListener("submit", (event) => { event.preventDefault(); act("pair", walk); });
  $("alpha").addEventListener("input", moveSlider);
  $("mode").addEventListener("change", moveSlider);
  $("map-fit").addEventListener("change", drawMap);
  await loadModel(config.models[0]);
}

act("start", start).finally(() => { explorer.ready = true; });
