"""Static-analysis monitors: a second mask source intersected with the grammar's."""
