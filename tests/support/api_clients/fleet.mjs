// `@fal-ai/client` against a fleet: requests submitted through one instance, their status (with logs) and result
// asked of another, each instance through a client of its own (`createFalClient`, pointed by its own request
// middleware: queue.fal.run -> <server>/queue). Prints one line "RESULT <JSON>": per request, its id, the log lines
// of its final status and its result.
// Env: LTXV097_API_URL (submits), LTXV097_API_OTHER_URL (status and result), FAL_KEY, LTXV097_API_INPUTS (a JSON list).
import { createFalClient } from "@fal-ai/client";

const APP = "fal-ai/ltx-video-lora";
const clientOf = (server) => createFalClient({
  credentials: process.env.FAL_KEY,
  requestMiddleware: async (request) => ({
    ...request,
    url: request.url.replace("https://queue.fal.run/", `${server}/queue/`),
  }),
});
const submitter = clientOf(process.env.LTXV097_API_URL);
const other = clientOf(process.env.LTXV097_API_OTHER_URL);

const submitted = await Promise.all(JSON.parse(process.env.LTXV097_API_INPUTS)
  .map((input) => submitter.queue.submit(APP, { input })));
const followed = [];
for (const { request_id: requestId } of submitted) { // one after the other: one poller per client, as they finish
  const status = await other.queue.subscribeToStatus(APP, { requestId, logs: true, mode: "polling",
                                                           pollInterval: 250 });
  const result = await other.queue.result(APP, { requestId });
  followed.push({ requestId, logs: (status.logs ?? []).map((log) => log.message), data: result.data });
}
console.log("RESULT " + JSON.stringify(followed));
