//! The one page `GET /` serves: choose or drop an image, see the class probabilities as a bar
//! chart and the Grad-CAM heat map over the image. HTML, CSS and script in one file embedded in
//! the binary (no CDN, no build step); it calls `POST /v1/classify?heatmap=1`.

pub const HTML: &str = include_str!("page.html");

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_self_contained_and_calls_the_api() {
        let h = super::HTML;
        assert!(h.starts_with("<!doctype html>"));
        assert!(h.contains("/v1/classify?heatmap=1"));
        // Nothing fetched from elsewhere: no absolute URLs in src/href attributes or fetches.
        for bad in [
            "src=\"http",
            "href=\"http",
            "fetch(\"http",
            "//cdn",
            "@import",
        ] {
            assert!(!h.contains(bad), "{bad}");
        }
    }
}
