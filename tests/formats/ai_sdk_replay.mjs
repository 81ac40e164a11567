// Reads one AI SDK UI message stream (a GET URL) with the `ai` package's own parser and
// schema, and builds the message with readUIMessageStream.
//
//   node ai_sdk_replay.mjs <url> <dir holding node_modules/ai>
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [, , url, aiDir] = process.argv;
const ai = await import(pathToFileURL(join(aiDir, "node_modules", "ai", "dist", "index.js")).href);
const { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } = ai;

const response = await fetch(url);
const chunks = [];
const rejected = [];
for await (const result of parseJsonEventStream({ stream: response.body, schema: uiMessageChunkSchema })) {
  if (result.success) chunks.push(result.value);
  else rejected.push(String(result.error));
}
let last;
for await (const message of readUIMessageStream({ stream: ReadableStream.from(chunks), terminateOnError: true })) {
  last = message;
}
const text = (last?.parts ?? []).filter((p) => p.type === "text").map((p) => p.text).join("");
console.log(JSON.stringify({ status: response.status, rejected, types: chunks.map((c) => c.type), text }));
