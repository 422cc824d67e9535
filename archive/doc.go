// Package archive makes and unpacks the zip archives of a job's files
// (artifacts and cache), and keeps every file it reads or writes inside the
// project directory even when the patterns, the tree or the archive are
// hostile.
//
// Containment rests on os.Root: every access below the project directory goes
// through one, so no name and no symlink, however crafted and whenever swapped
// in, reaches outside it. The checks in front of it (names, symlink targets,
// entry types) exist to give a precise error, and to keep what the project
// directory holds afterwards free of symlinks that lead out of it, which a
// later script could follow.
//
// What os.Root does not stop, this package does not either: a hard link or
// a bind mount inside the project directory is read as what it is, so a
// job's hard link to a file it can read elsewhere archives that file.
//
// Select chooses the files from artifacts:paths or cache:paths, Write streams
// them into a zip, and Extract unpacks an archive made by another job, which
// it treats as untrusted. WriteFileAtomic stores an archive, such as a cache,
// so that a crash never leaves half of one in place.
package archive
