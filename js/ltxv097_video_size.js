// Shows, under the LTX-Video 0.9.7 Text to Video and Sampler nodes, the video their settings give: width×height,
// frame count, duration, and how the model generates it (frames as 8k+1, sizes as multiples of 32), updated as the
// widgets change. Display only: nothing here is saved in the workflow or sent with the prompt.
import { app } from "../../scripts/app.js";

const EXTENSION = "LTX097.VideoSize";
const WIDGET = "ltx097_video_size";

// Same table as nodes/text_to_video.py (RESOLUTIONS).
const RESOLUTIONS = {
  "480p": { "16:9": [848, 480], "1:1": [480, 480], "9:16": [480, 848] },
  "720p": { "16:9": [1280, 720], "1:1": [720, 720], "9:16": [720, 1280] },
};

// Which widgets hold the size on each node; `size(values)` turns them into [width, height].
const NODES = {
  LTX097TextToVideo: {
    inputs: ["resolution", "aspect_ratio", "number_of_frames", "frame_rate"],
    size: (v) => RESOLUTIONS[v.resolution]?.[v.aspect_ratio],
    frames: (v) => v.number_of_frames,
  },
  LTX097Sampler: {
    inputs: ["width", "height", "num_frames", "frame_rate"],
    size: (v) => [v.width, v.height],
    frames: (v) => v.num_frames,
  },
};

// ltx_core.media.padded_frame_count: the next 8k+1 (89 -> 89, 90 -> 97).
function paddedFrames(frames) {
  return (Math.floor((frames - 2) / 8) + 1) * 8 + 1;
}

const multipleOf32 = (pixels) => Math.ceil(pixels / 32) * 32;

// The two lines shown for a width, height, frame count and frame rate, and a longer explanation.
function describeVideo(width, height, frames, frameRate) {
  const seconds = frameRate > 0 ? (frames / frameRate).toFixed(2) : "?";
  const generated = paddedFrames(frames);
  const gridWidth = multipleOf32(width);
  const gridHeight = multipleOf32(height);
  const frameRule = generated === frames ? `${frames} = 8·${(frames - 1) / 8}+1` : `${generated} frames (8k+1)`;
  return [
    `${width}×${height} px · ${frames} frames · ${seconds} s`,
    `model grid ${gridWidth}×${gridHeight} · ${frameRule}`,
    `The model generates ${gridWidth}×${gridHeight} pixels (multiples of 32) and ${generated} frames (8k+1); ` +
      `the video is cropped back to ${width}×${height} and ${frames} frames: ${seconds} s at ${+frameRate} fps.`,
  ];
}

function widgetValues(node, names) {
  const values = {};
  const linked = [];
  for (const name of names) {
    const widget = node.widgets?.find((w) => w.name === name);
    values[name] = widget?.value;
    const slot = node.inputs?.findIndex((i) => i.widget?.name === name) ?? -1;
    if (slot >= 0 && node.isInputConnected(slot)) linked.push(name);
  }
  return { values, linked };
}

function update(node, spec, element) {
  const { values, linked } = widgetValues(node, spec.inputs);
  const size = spec.size(values);
  const frames = spec.frames(values);
  let lines;
  if (linked.length) {
    lines = [
      `${linked.join(", ")} from a link: known when it runs`,
      "any size: padded to ×32 / 8k+1, cropped back",
      "A linked value can be any size or frame count: the model generates the next multiple of 32 pixels and " +
        "the next 8k+1 frames, and the video is cropped back to exactly the values it gets.",
    ];
  } else if (!size || !Number.isFinite(frames) || frames < 1) {
    lines = ["", "", ""];
  } else {
    lines = describeVideo(size[0], size[1], frames, Number(values.frame_rate));
  }
  element.firstChild.textContent = lines[0];
  element.lastChild.textContent = lines[1];
  element.title = lines[2];
}

function attach(node, spec) {
  if (node.widgets?.some((w) => w.name === WIDGET)) return;
  const element = document.createElement("div");
  element.className = "ltx097-video-size";
  Object.assign(element.style, {
    font: "11px monospace", color: "var(--input-text, #ddd)", opacity: "0.85", lineHeight: "15px",
    padding: "0 4px", overflow: "hidden", whiteSpace: "nowrap", textOverflow: "ellipsis",
  });
  element.append(document.createElement("div"), document.createElement("div"));
  const widget = node.addDOMWidget(WIDGET, "ltx097_info", element, {
    serialize: false, // not sent with the prompt
    hideOnZoom: true,
    getValue: () => "",
    setValue: () => {},
    // the frontend gives a DOM widget its height less 20 px of margins: two lines of 15 px
    getMinHeight: () => 50,
    getMaxHeight: () => 50,
  });
  widget.serialize = false; // not saved in the workflow's widgets_values
  const refresh = () => update(node, spec, element);
  for (const name of spec.inputs) {
    const target = node.widgets?.find((w) => w.name === name);
    if (!target) continue;
    const callback = target.callback;
    target.callback = function (...args) {
      const result = callback?.apply(this, args);
      refresh();
      return result;
    };
  }
  const onConnectionsChange = node.onConnectionsChange;
  node.onConnectionsChange = function (...args) {
    const result = onConnectionsChange?.apply(this, args);
    refresh();
    return result;
  };
  refresh();
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  return refresh;
}

app.registerExtension({
  name: EXTENSION,
  nodeCreated(node) {
    const spec = NODES[node.comfyClass];
    if (spec) node.ltx097RefreshSize = attach(node, spec);
  },
  // Values from a loaded workflow are set after nodeCreated.
  loadedGraphNode(node) {
    node.ltx097RefreshSize?.();
  },
});
