"""Data sources: the freely licensed training photos fetched from Debian packages (:mod:`.photos`), their
credits (:mod:`.photo_credits`, with the package data table ``photo_credits.tsv``) and the reader of the Qt
resource bundles where one package keeps its photos (:mod:`.qtrcc`)."""
