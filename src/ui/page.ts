/**
 * The status page at "/": one HTML file with its CSS and script inline (status.html), embedded in the
 * binary by the bundler, no build step. It reads /api/status and /api/hosts and follows /api/events.
 */
import { textResponse, type HttpRequest, type HttpResponse } from "../http/handler.ts";
import page from "./status.html" with { type: "text" };

// With `type: "text"` the import is the file's text (bun-types declares every .html an HTML bundle).
export const statusHtml = page as unknown as string;

export function statusPage(req: HttpRequest): HttpResponse {
  return textResponse(req, 200, statusHtml, "text/html; charset=utf-8");
}
