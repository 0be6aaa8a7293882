"""fnplat.controller: schedules invocations into warm pools of containers (tasks)."""
