// Drives the real `ai` package against Spool's AI SDK chat backend, through the SDK's
// own DefaultChatTransport, AbstractChat and readUIMessageStream.
//
//   node ai_sdk_chat.mjs <spool base URL> <dir holding node_modules/ai> <chat id>
//
// Prints one JSON object with what happened; the Python test asserts on it.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [, , base, aiDir, chatId] = process.argv;
const ai = await import(pathToFileURL(join(aiDir, "node_modules", "ai", "dist", "index.js")).href);
const {
  AbstractChat,
  DefaultChatTransport,
  parseJsonEventStream,
  readUIMessageStream,
  uiMessageChunkSchema,
} = ai;

const api = `${base}/v1/ui/chat`;
const words = (tag, n) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(" ");
// ~3 s per answer: the resumes below must find the job still running, even on a loaded machine
const slow = (text) => ({ model: "simulated", parameters: { text, ttft_ms: 0, tokens_per_second: 30 } });

// The chat state a UI framework would keep (what @ai-sdk/react's Chat holds in React state).
class State {
  constructor(messages = []) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage = (message) => { this.messages = this.messages.concat(message); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  };
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor({ messages, ...init }) {
    super({ ...init, state: new State(messages) });
  }
}

// A fetch whose next POST loses the network once `deltas` text deltas arrived and the
// chat shows some text (`plan.shown`, polled): the socket is closed (the server sees the
// client go) and the body fails as a browser's does, with a TypeError, so the chat takes
// it for a disconnect.
function cuttingFetch() {
  const plan = { armed: false, deltas: 0, shown: () => true };
  const cutting = async (url, init) => {
    const response = await fetch(url, init);
    if (!plan.armed || init?.method !== "POST") return response;
    plan.armed = false;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    let cutNow = false;
    const body = new ReadableStream({
      async pull(controller) {
        if (cutNow) {
          const deadline = Date.now() + 10_000;
          while (!plan.shown() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
          await reader.cancel();
          controller.error(new TypeError("fetch failed: network connection lost"));
          return;
        }
        const { value, done } = await reader.read();
        if (done) return controller.close();
        controller.enqueue(value);
        seen += decoder.decode(value, { stream: true });
        cutNow = (seen.match(/"type":"text-delta"/g) ?? []).length >= plan.deltas;
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { plan, fetch: cutting };
}

const textOf = (message) =>
  (message?.parts ?? []).filter((p) => p.type === "text").map((p) => p.text).join("");
const summary = (chat) => chat.messages.map((m) => ({ id: m.id, role: m.role, text: textOf(m) }));

async function jobs() {
  const response = await fetch(`${base}/v1/sessions/${chatId}`);
  return (await response.json()).jobs;
}

const errors = [];
const onError = (error) => errors.push(String(error));
const cut = cuttingFetch();
const transport = new DefaultChatTransport({ api, fetch: cut.fetch });
const out = { errors };

// 1. A message whose answer loses the network mid-way, resumed on the same chat.
const chat = new Chat({ id: chatId, transport, onError });
cut.plan.shown = () => chat.lastMessage?.role === "assistant" && textOf(chat.lastMessage) !== "";
cut.plan.armed = true;
cut.plan.deltas = 3;
await chat.sendMessage({ text: "first question" }, { body: slow(words("a", 100)) });
out.cut1 = { status: chat.status, messages: summary(chat) };
await chat.resumeStream();
out.resumed1 = { status: chat.status, messages: summary(chat) };

// 2. Another answer cut, then the page "reloads": a new Chat with the persisted messages
//    resumes (as useChat({ resume: true }) does on mount).
cut.plan.armed = true;
await chat.sendMessage({ text: "second question" }, { body: slow(words("b", 100)) });
out.cut2 = { status: chat.status, messages: summary(chat) };
const reloaded = new Chat({
  id: chatId,
  messages: structuredClone(chat.messages),
  transport: new DefaultChatTransport({ api }),
  onError,
});
await reloaded.resumeStream();
out.resumed2 = { status: reloaded.status, messages: summary(reloaded) };

// 3. After the job ended: the reconnect route says 204, and a resume changes nothing.
out.reconnectStatus = (await fetch(`${api}/${chatId}/stream`)).status;
await reloaded.resumeStream();
out.afterEnd = { status: reloaded.status, count: reloaded.messages.length };

// 4. Every chunk of a job with reasoning and a tool call passes the SDK's chunk schema,
//    and readUIMessageStream builds the message from them.
await reloaded.sendMessage(
  { text: "third question" },
  {
    body: {
      model: "simulated",
      tools: ["calculator"],
      parameters: {
        text: "It is 4.", thinking: "add them", ttft_ms: 0, tokens_per_second: 500,
        tool_calls: [{ name: "calculator", arguments: { expression: "2 + 2" } }],
      },
    },
  },
);
out.third = { status: reloaded.status, parts: reloaded.lastMessage.parts.map((p) => p.type) };
const all = await jobs();
out.jobs = all.map((j) => ({ job_id: j.job_id, status: j.status, output_text: j.output_text }));
const replay = await fetch(
  `${base}/v1/sessions/${chatId}/events?job_id=${all[2].job_id}&format=ai-sdk`,
);
const parsed = parseJsonEventStream({ stream: replay.body, schema: uiMessageChunkSchema });
const chunks = [];
const rejected = [];
for await (const result of parsed) {
  if (result.success) chunks.push(result.value);
  else rejected.push(String(result.error));
}
let last;
for await (const message of readUIMessageStream({ stream: ReadableStream.from(chunks), terminateOnError: true })) {
  last = message;
}
out.replay = {
  rejected,
  types: chunks.map((c) => c.type),
  text: textOf(last),
  parts: last.parts.map((p) => p.type),
  id: last.id,
};
console.log(JSON.stringify(out));
