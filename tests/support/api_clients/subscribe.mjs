// The hosted service's documented JavaScript call, unchanged except for the prompt and a small size, pointed at
// a ComfyUI through the client's own request middleware: queue.fal.run -> <server>/queue, fal.run -> <server>.
// Env: LTXV097_API_URL (e.g. https://127.0.0.1:8188), FAL_KEY, LTXV097_API_INPUT (extra input fields, JSON).
import { fal } from "@fal-ai/client";

const server = process.env.LTXV097_API_URL;
fal.config({
  credentials: process.env.FAL_KEY,
  requestMiddleware: async (request) => ({
    ...request,
    url: request.url.replace("https://queue.fal.run/", `${server}/queue/`).replace("https://fal.run/", `${server}/`),
  }),
});

const result = await fal.subscribe("fal-ai/ltx-video-lora", {
  input: {
    prompt: "A red fox trots through fresh snow at dawn",
    ...JSON.parse(process.env.LTXV097_API_INPUT || "{}"),
  },
  logs: true,
  onQueueUpdate: (update) => {
    if (update.status === "IN_PROGRESS") {
      update.logs.map((log) => log.message).forEach(console.log);
    }
  },
});
console.log("RESULT " + JSON.stringify({ data: result.data, requestId: result.requestId }));
