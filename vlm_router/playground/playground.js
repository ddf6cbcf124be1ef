// The vlm-router playground: a chat with the server's models through its public API
// (GET /v1/models, POST /v1/chat/completions), nothing else. No build step, no dependencies.

const $ = (id) => document.getElementById(id);
const STORE = "vlm-router.playground";
const SAVED = ["temperature", "top_p", "max_tokens", "seed", "json_mode", "system", "api_key"]; // the settings' fields
const REFRESH_MS = 5000;

const state = {
  models: [],        // the cards of GET /v1/models
  history: [],       // the messages of the turns that were answered, as the API takes them
  attachments: [],   // {kind: "image" | "video", file, url (an object URL for the thumbnail)}
  controller: null,  // the AbortController of the request in flight
  conversation: 0,   // counts "Clear chat": a reply to a cleared conversation is not kept
};

/** A failure the server described: its status and OpenAI error object. */
class ServerError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || error.type || null;
  }

  toString() {
    const code = this.code ? ` (${this.code})` : "";
    return this.status ? `Error ${this.status}${code}: ${this.message}` : `Error${code}: ${this.message}`;
  }
}

// ---- settings, kept in this browser ----

function saved() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || "{}");
  } catch {
    return {};
  }
}

function save(changes) {
  localStorage.setItem(STORE, JSON.stringify({ ...saved(), ...changes }));
}

/** Fill the settings from the browser's storage, and store each change. */
function restoreSettings() {
  const stored = saved();
  for (const name of SAVED) {
    const input = $(name);
    if (stored[name] !== undefined) {
      if (input.type === "checkbox") input.checked = Boolean(stored[name]);
      else input.value = stored[name];
    }
    input.addEventListener("change", () => {
      save({ [name]: input.type === "checkbox" ? input.checked : input.value });
      if (name === "api_key") refreshModels();
    });
  }
}

/** The sampling settings as request fields; blank ones are left to the model's defaults. */
function samplingFields() {
  const fields = {};
  for (const name of ["temperature", "top_p"]) {
    if ($(name).value !== "") fields[name] = Number($(name).value);
  }
  for (const name of ["max_tokens", "seed"]) {
    if ($(name).value !== "") fields[name] = Math.trunc(Number($(name).value));
  }
  if ($("json_mode").checked) fields.response_format = { type: "json_object" };
  return fields;
}

function headers() {
  const key = $("api_key").value.trim();
  return { "Content-Type": "application/json", ...(key ? { Authorization: `Bearer ${key}` } : {}) };
}

async function errorOf(response) {
  const body = await response.json().catch(() => null);
  return new ServerError(response.status, body?.error || { message: response.statusText });
}

// ---- models ----

function currentModel() {
  return state.models.find((card) => card.id === $("model").value) || null;
}

function describe(card) {
  const caps = card.capabilities;
  const parts = [card.state.replace("_", " ")];
  if (card.state === "loading" && card.loading?.phase) parts[0] = `loading (${card.loading.phase})`;
  if (caps) {
    if (!caps.images) parts.push("no images");
    else parts.push(caps.max_images == null ? "images" : `up to ${caps.max_images} image${caps.max_images === 1 ? "" : "s"}`);
    if (caps.max_image_pixels) parts.push(`images scaled to ${(caps.max_image_pixels / 1e6).toFixed(2)} MP`);
    parts.push(caps.video === "none" ? "no video" : `video (${caps.video})`);
  }
  if (card.family) parts.push(card.family);
  if (card.state === "failed" && card.error) parts.push(card.error);
  return parts.join(" · ");
}

function showModel() {
  const card = currentModel();
  $("model-info").textContent = card ? describe(card) : "";
  const video = card?.capabilities && card.capabilities.video !== "none";
  $("files").accept = video ? "image/*,video/*" : "image/*";
}

async function refreshModels() {
  let response;
  try {
    response = await fetch("/v1/models", { headers: headers() });
  } catch (error) {
    notify(`The server did not answer: ${error.message}`);
    return;
  }
  if (!response.ok) {
    const error = await errorOf(response);
    notify(response.status === 401 ? `${error} Enter a key under Settings.` : String(error));
    return;
  }
  notify("");
  const { data } = await response.json();
  const select = $("model");
  const chosen = select.value || saved().model;
  if (data.map((card) => card.id).join("\n") !== state.models.map((card) => card.id).join("\n")) {
    select.replaceChildren(...data.map((card) => new Option(card.id, card.id)));
  }
  state.models = data;
  if (data.some((card) => card.id === chosen)) select.value = chosen;
  for (const option of select.options) {
    const card = data.find((c) => c.id === option.value);
    option.textContent = card.state === "ready" ? card.id : `${card.id} (${card.state.replace("_", " ")})`;
  }
  showModel();
}

// ---- attachments ----

function notify(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function attach(files) {
  const card = currentModel();
  const video = card?.capabilities && card.capabilities.video !== "none";
  for (const file of files) {
    if (file.type.startsWith("image/")) {
      state.attachments.push({ kind: "image", file, url: URL.createObjectURL(file) });
    } else if (file.type.startsWith("video/") && video) {
      forget(state.attachments.filter((a) => a.kind === "video")); // one video a message
      state.attachments.push({ kind: "video", file, url: URL.createObjectURL(file) });
    } else {
      notify(`${file.name}: ${file.type.startsWith("video/") ? `${card?.id ?? "this model"} does not take video` : "not an image or a video"}`);
    }
  }
  showAttachments();
}

function showAttachments() {
  const list = $("attachments");
  list.replaceChildren(
    ...state.attachments.map((attachment) => {
      const item = document.createElement("li");
      item.append(thumbnail(attachment.kind, attachment.url, attachment.file.name));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${attachment.file.name}`);
      remove.addEventListener("click", () => forget([attachment]));
      item.append(remove);
      return item;
    }),
  );
}

/** Take `attachments` out of the message being written. */
function forget(attachments) {
  for (const attachment of attachments) URL.revokeObjectURL(attachment.url);
  state.attachments = state.attachments.filter((a) => !attachments.includes(a));
  showAttachments();
}

function thumbnail(kind, url, title) {
  const element = document.createElement(kind === "image" ? "img" : "video");
  element.src = url;
  element.title = title;
  if (kind === "image") element.alt = title;
  else element.muted = true;
  element.className = "thumb";
  return element;
}

function readDataURL(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** The image as a data URL, scaled down in the browser to `budget` pixels when it has more. */
async function imageURL(file, budget) {
  const bitmap = budget ? await createImageBitmap(file).catch(() => null) : null;
  if (!bitmap || bitmap.width * bitmap.height <= budget) return { url: await readDataURL(file) };
  const scale = Math.sqrt(budget / (bitmap.width * bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.floor(bitmap.width * scale));
  canvas.height = Math.max(1, Math.floor(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const type = file.type === "image/png" ? "image/png" : "image/jpeg";
  return { url: canvas.toDataURL(type, 0.92), size: [canvas.width, canvas.height], from: [bitmap.width, bitmap.height] };
}

/** The attachments as content parts, then the text. */
async function contentParts(text, card) {
  const parts = [];
  const media = [];
  for (const attachment of state.attachments) {
    if (attachment.kind === "image") {
      const image = await imageURL(attachment.file, card?.capabilities?.max_image_pixels);
      parts.push({ type: "image_url", image_url: { url: image.url } });
      const scaled = image.from ? `, scaled from ${image.from.join("×")} to ${image.size.join("×")}` : "";
      media.push({ kind: "image", url: image.url, title: `${attachment.file.name}${scaled}` });
    } else {
      const url = await readDataURL(attachment.file);
      parts.push({ type: "video_url", video_url: { url } });
      media.push({ kind: "video", url, title: attachment.file.name });
    }
  }
  if (text) parts.push({ type: "text", text });
  return { content: media.length ? parts : text, media };
}

// ---- the conversation ----

function messageElement(role, name, text, media = []) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const who = document.createElement("p");
  who.className = "role";
  who.textContent = name;
  item.append(who);
  if (media.length) {
    const strip = document.createElement("div");
    strip.className = "media";
    strip.append(...media.map((m) => thumbnail(m.kind, m.url, m.title)));
    item.append(strip);
  }
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  item.append(body);
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function figures(item, timing, usage, finish) {
  const line = document.createElement("p");
  line.className = "figures";
  const parts = [];
  if (timing.first !== null) {
    const ttft = (timing.first - timing.start) / 1000;
    parts.push(`first token ${ttft.toFixed(2)} s`);
    const decoding = (timing.end - timing.first) / 1000;
    if (usage && usage.completion_tokens > 1 && decoding > 0) {
      parts.push(`${((usage.completion_tokens - 1) / decoding).toFixed(1)} tokens/s`);
    }
  }
  if (usage) parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  if (finish === "length") parts.push("cut at max tokens");
  if (finish === "stopped") parts.push("stopped");
  line.textContent = parts.join(" · ");
  item.append(line);
}

/** Read the server-sent events of `response`, calling `onChunk` with each parsed chunk. */
async function readEvents(response, onChunk) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer
        .slice(0, end)
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      buffer = buffer.slice(end + 2);
      if (data === "[DONE]") return;
      if (data) onChunk(JSON.parse(data));
    }
  }
}

async function send() {
  const text = $("prompt").value.trim();
  if (state.controller || (!text && !state.attachments.length)) return;
  const card = currentModel();
  if (!card) {
    notify("No model to send to: the server lists none, or did not answer.");
    return;
  }
  notify("");
  busy(new AbortController()); // before reading the files, so a second Enter meanwhile sends nothing
  let content, media;
  try {
    ({ content, media } = await contentParts(text, card));
  } catch (error) {
    notify(`An attachment could not be read: ${error.message}`);
    busy(null);
    return;
  }
  const message = { role: "user", content };
  const system = $("system").value.trim();
  const body = {
    model: card.id,
    messages: [...(system ? [{ role: "system", content: system }] : []), ...state.history, message],
    stream: true,
    stream_options: { include_usage: true },
    ...samplingFields(),
  };
  const asked = messageElement("user", "You", text, media);
  const answer = messageElement("assistant", card.id, "");
  answer.classList.add("streaming");
  answer.setAttribute("aria-busy", "true");
  const output = answer.querySelector(".text");
  $("prompt").value = "";
  forget(state.attachments);
  const conversation = state.conversation;
  const remember = () => {
    if (conversation === state.conversation) state.history.push(message, { role: "assistant", content: output.textContent });
  };
  const timing = { start: performance.now(), first: null, end: null };
  let usage = null;
  let finish = null;
  let chunks = 0;
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.controller.signal });
    if (!response.ok) throw await errorOf(response);
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new ServerError(0, chunk.error);
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) {
        timing.first ??= performance.now();
        output.textContent += choice.delta.content;
        answer.dataset.chunks = String(++chunks);
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
    });
    timing.end = performance.now();
    remember();
    figures(answer, timing, usage, finish);
  } catch (error) {
    timing.end = performance.now();
    if (error.name === "AbortError") {
      if (output.textContent) remember();
      else asked.classList.add("failed");
      figures(answer, timing, null, "stopped");
    } else {
      asked.classList.add("failed");
      answer.classList.add("error");
      output.textContent = error instanceof ServerError ? String(error) : `Error: ${error.message}`;
      answer.setAttribute("role", "alert");
    }
  } finally {
    answer.classList.remove("streaming");
    answer.removeAttribute("aria-busy");
    answer.scrollIntoView({ block: "end" });
    busy(null);
    refreshModels();
  }
}

function busy(controller) {
  state.controller = controller;
  $("send").disabled = controller !== null;
  $("stop").hidden = controller === null;
  if (controller === null) $("prompt").focus();
}

// ---- wiring ----

function setUp() {
  restoreSettings();
  $("model").addEventListener("change", () => {
    save({ model: $("model").value });
    showModel();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("files").addEventListener("change", () => {
    attach($("files").files);
    $("files").value = "";
  });
  $("prompt").addEventListener("paste", (event) => {
    if (event.clipboardData.files.length) {
      event.preventDefault();
      attach(event.clipboardData.files);
    }
  });
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    document.body.classList.add("dropping");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) document.body.classList.remove("dropping"); // left the window, not one element for another
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dropping");
    attach(event.dataTransfer.files);
  });
  $("clear").addEventListener("click", () => {
    state.controller?.abort();
    state.conversation += 1;
    state.history = [];
    $("messages").replaceChildren();
  });
  refreshModels();
  setInterval(() => {
    if (document.visibilityState === "visible" && !state.controller) refreshModels();
  }, REFRESH_MS);
}

setUp();
