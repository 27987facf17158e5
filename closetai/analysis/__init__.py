"""One photo or clip to stored rows: photo, video (decode -> infer -> track -> describe -> render), the tracker."""
