//! The one page `GET /` serves: choose or drop an image, see the class probabilities as a bar
//! chart and the Grad-CAM heat map over the image. HTML, CSS and script in one file embedded in
//! the binary (no CDN, no build step); it calls `POST /v1/classify?heatmap=1`. The server writes
//! the model's class list into it ([`render`]), so the header and the bars' names are the served
//! model's (ISIC 2018's 7, ISIC 2019's 8, ...) without a request of their own.

pub const HTML: &str = include_str!("page.html");

/// Where [`render`] writes the classes: a script expression that is `null` as it stands.
const SLOT: &str = "/*MODEL_CLASSES*/null";

/// The page with `classes` ((code, name) pairs in output order) as a script literal; `None`
/// (the model is still loading) leaves it `null`, and the page takes the codes from its first
/// answer instead.
pub fn render(classes: Option<&[(String, String)]>) -> String {
    let Some(classes) = classes else {
        return HTML.to_string();
    };
    // JSON is a JS literal; `<` escaped so that no code or name can close the script element.
    let json = serde_json::to_string(classes)
        .expect("strings serialise")
        .replace('<', "\\u003c");
    HTML.replacen(SLOT, &json, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The class list is the model's, not a fixed one.
        assert!(!h.contains("ISIC 2018") && !h.contains("AKIEC"));
        assert_eq!(h.matches(SLOT).count(), 1);
    }

    #[test]
    fn the_models_classes_are_written_in_escaped() {
        let l = crate::classes::ClassList::isic2019();
        let pairs: Vec<(String, String)> = l
            .classes()
            .iter()
            .map(|c| (c.code.clone(), c.name.clone()))
            .collect();
        let h = render(Some(&pairs));
        assert!(!h.contains(SLOT));
        assert!(
            h.contains(r#"const MODEL_CLASSES = [["MEL","melanoma"],["NV","melanocytic nevus"],"#)
        );
        assert!(h.contains(r#"["SCC","squamous cell carcinoma"]];"#));
        let odd = [("X</script>".to_string(), "<b>".to_string())];
        let h = render(Some(&odd));
        assert!(h.contains(r#"[["X\u003c/script>","\u003cb>"]]"#), "{h}");
        assert_eq!(h.matches("</script>").count(), 1);
        assert_eq!(render(None), HTML);
    }
}
