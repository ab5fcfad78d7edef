// What apps do with `@fal-ai/client` beyond the documented snippet, against a ComfyUI pointed at by the client's
// own request middleware (queue.fal.run -> <server>/queue, fal.run -> <server>, rest.fal.ai -> <server>/rest).
// `node apps.mjs <scenario> '<arguments JSON>'` prints one line "RESULT <JSON>": what the scenario saw.
// Env: LTXV097_API_URL (e.g. https://127.0.0.1:8188), FAL_KEY.
import { readFileSync } from "node:fs";
import { fal } from "@fal-ai/client";

const server = process.env.LTXV097_API_URL;
const APP = "fal-ai/ltx-video-lora";
fal.config({
  credentials: process.env.FAL_KEY,
  requestMiddleware: async (request) => ({
    ...request,
    url: request.url
      .replace("https://queue.fal.run/", `${server}/queue/`)
      .replace("https://rest.fal.ai/", `${server}/rest/`)
      .replace("https://fal.run/", `${server}/`),
  }),
});

const blobOf = (path, type) => new Blob([readFileSync(path)], { type });

async function caught(call) {
  try {
    return { ok: await call() };
  } catch (error) {
    return { status: error.status, body: error.body ?? null, message: error.message,
             requestId: error.requestId ?? null, timeoutType: error.timeoutType ?? null };
  }
}

const scenarios = {
  // fal.storage.upload, then image to video with the returned URL.
  async upload_image_to_video({ image, input }) {
    const url = await fal.storage.upload(blobOf(image, "image/jpeg"));
    const result = await fal.subscribe(`${APP}/image-to-video`, { input: { ...input, image_url: url } });
    return { url, data: result.data, requestId: result.requestId };
  },
  // A Blob inside the input: the client uploads it before submitting.
  async blob_image_to_video({ image, input }) {
    const result = await fal.subscribe(`${APP}/image-to-video`,
                                       { input: { ...input, image_url: blobOf(image, "image/jpeg") } });
    return { data: result.data, requestId: result.requestId };
  },
  async multiconditioning({ image, video, input }) {
    const result = await fal.subscribe(`${APP}/multiconditioning`, { input: {
      ...input,
      images: [{ image_url: blobOf(image, "image/jpeg"), start_frame_number: 0, strength: 0.9 }],
      videos: [{ video_url: blobOf(video, "video/mp4"), start_frame_number: 8 }],
    } });
    return { data: result.data, requestId: result.requestId };
  },
  // fal.queue.streamStatus on a submitted request, then a streaming subscribe.
  async stream({ input }) {
    const { request_id: requestId } = await fal.queue.submit(APP, { input });
    const stream = await fal.queue.streamStatus(APP, { requestId, logs: true });
    const events = [];
    stream.on("data", (event) => events.push(event));
    const done = await stream.done();
    const updates = [];
    const subscribed = await fal.subscribe(APP, { input, mode: "streaming", logs: true,
                                                  onQueueUpdate: (update) => updates.push(update) });
    return { requestId, events, done, updates, subscribed: { data: subscribed.data,
                                                             requestId: subscribed.requestId } };
  },
  // A request that cannot start in time behind a slow one (cancelled then); a low-priority one waits behind a
  // normal one.
  async timeout_and_priority({ slow, input }) {
    const blocker = await fal.queue.submit(APP, { input: slow });
    const late = await fal.queue.submit(APP, { input, startTimeout: 2 });
    const low = await fal.queue.submit(APP, { input, priority: "low" });
    const normal = await fal.queue.submit(APP, { input });
    const lateResult = await caught(async () => {
      await fal.queue.subscribeToStatus(APP, { requestId: late.request_id });
      return fal.queue.result(APP, { requestId: late.request_id });
    });
    const lowStatus = await fal.queue.status(APP, { requestId: low.request_id });
    const normalStatus = await fal.queue.status(APP, { requestId: normal.request_id });
    await fal.queue.cancel(APP, { requestId: blocker.request_id });
    for (const handle of [low, normal]) {
      await fal.queue.subscribeToStatus(APP, { requestId: handle.request_id });
    }
    return { late: lateResult, lowPosition: lowStatus.queue_position, normalPosition: normalStatus.queue_position,
             ids: { blocker: blocker.request_id, late: late.request_id, low: low.request_id,
                    normal: normal.request_id } };
  },
  // What the client's errors hold: a field's 422, an unknown request, a wrong method.
  async errors({ input }) {
    return {
      invalid: await caught(() => fal.queue.submit(APP, { input: { ...input, number_of_frames: null } })),
      unknown: await caught(() => fal.queue.status(APP, { requestId: "0b7e2a4c-3f1d-4c55-9a0e-5d6f7a8b9c0d" })),
      method: await caught(() => fal.queue.submit(`${APP}/image-to-video`, { input, method: "get" })),
    };
  },
};

const [scenario, argumentsJson] = process.argv.slice(2);
console.log("RESULT " + JSON.stringify(await scenarios[scenario](JSON.parse(argumentsJson))));
